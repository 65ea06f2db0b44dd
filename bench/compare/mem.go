// SPDX-License-Identifier: MIT
// mem.go - anchor: resident memory per idle goroutine, the Go form of
// bench/mem.c: start N goroutines that block on a channel, wait until all
// are parked, divide the RSS growth by N. Each repetition re-executes this
// program, so no repetition reuses another's freed stacks.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
)

const n = 100000

func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		panic(err)
	}
	return pages * int64(os.Getpagesize())
}

// child: one measurement, printed as a bare number of bytes per goroutine.
func child() {
	block := make(chan struct{})
	var started sync.WaitGroup
	runtime.GC()
	before := rss()
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-block
		}()
	}
	started.Wait()
	runtime.Gosched() // the last ones reach their receive
	after := rss()
	fmt.Println(float64(after-before) / n)
	os.Exit(0)
}

func once() float64 {
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), "BENCH_MEM_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		panic(err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		panic(err)
	}
	return v
}

func main() {
	if os.Getenv("BENCH_MEM_CHILD") != "" {
		child()
	}
	r, err := strconv.Atoi(os.Getenv("BENCH_REPS"))
	if err != nil {
		r = 9
	}
	if r < 5 {
		r = 5
	}
	if r > 99 {
		r = 99
	}
	once()
	v := make([]float64, r)
	for i := range v {
		v[i] = once()
	}
	sort.Float64s(v)
	m := v[r/2]
	if r%2 == 0 {
		m = (v[r/2-1] + v[r/2]) / 2
	}
	fmt.Printf("BENCH mem.idle.go %.0f B\n", m)
}
