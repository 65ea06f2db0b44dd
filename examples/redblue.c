/* SPDX-License-Identifier: MIT */
/*
 * redblue.c - greenlet's first example in C: two green threads hand control
 * to each other explicitly with jg_switch(). No scheduler is involved: each
 * runs exactly until it switches away or returns.
 *
 * Prints "red", "blue", "red done". "blue done" is never printed: when red
 * returns, control goes to red's parent (main), and nobody resumes blue.
 */
#include <juggle.h>
#include <stdio.h>

static struct jg_green *red, *blue;

static void *red_run(void *arg)
{
    (void)arg;
    puts("red");
    jg_switch(blue, NULL);      /* blue runs until it switches back */
    puts("red done");
    return NULL;                /* back to main, red's parent */
}

static void *blue_run(void *arg)
{
    (void)arg;
    puts("blue");
    /* Returns only if something switches to blue again, or if blue is
     * killed: then the value is JG_ERR(-ECANCELED). */
    if (JG_IS_ERR(jg_switch(red, NULL)))
        return NULL;
    puts("blue done");
    return NULL;
}

int main(void)
{
    int rc;

    /* jg_create makes a green thread that does not run until switched to;
     * its parent is the caller, main. */
    if ((rc = jg_create(&red, red_run, NULL, NULL)) < 0 ||
        (rc = jg_create(&blue, blue_run, NULL, NULL)) < 0) {
        fprintf(stderr, "jg_create: %s\n", jg_strerror(rc));
        return 1;
    }
    jg_switch(red, NULL);

    /* Clean up: red finished; blue is still suspended in its switch.
     * Killing it makes its jg_switch return an error so it can unwind. */
    jg_join(red, NULL, JG_FOREVER);
    jg_kill(blue);
    jg_join(blue, NULL, JG_FOREVER);
    return 0;
}
