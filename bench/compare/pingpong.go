// SPDX-License-Identifier: MIT
// pingpong.go - anchor: two goroutines that block and wake each other
// through unbuffered channels, the Go form of bench/pingpong.c. Run it with
// GOMAXPROCS=1 pinned to one CPU. ns per round trip.
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"
)

const n = 1000000

func reps() int {
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
	return r
}

func run(f func() float64) float64 {
	f()
	v := make([]float64, reps())
	for i := range v {
		v[i] = f()
	}
	sort.Float64s(v)
	k := len(v)
	if k%2 == 1 {
		return v[k/2]
	}
	return (v[k/2-1] + v[k/2]) / 2
}

func once() float64 {
	ping := make(chan int)
	pong := make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	ns := float64(time.Since(t0).Nanoseconds()) / n
	close(ping)
	return ns
}

func main() {
	v := run(once)
	prec := 0
	if v < 10 {
		prec = 2
	} else if v < 1000 {
		prec = 1
	}
	fmt.Printf("BENCH pingpong.go %.*f ns\n", prec, v)
}
