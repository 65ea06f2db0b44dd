// SPDX-License-Identifier: MIT
// spawn.go - anchor: goroutine spawn + run + join through a WaitGroup, in
// batches of 1000 as bench/spawn.c does, one at a time, and 20,000 at once.
// Run it with GOMAXPROCS=1 pinned to one CPU (bench/compare/run.sh does).
// ns per task.
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

const (
	batch   = 1000
	batches = 50 // 50,000 tasks per repetition
	serial  = 100000
	all     = 20000 // spawned before the first join
)

// reps: BENCH_REPS as bench/bench.h reads it (default 9, within [5, 99]).
func reps() int {
	n, err := strconv.Atoi(os.Getenv("BENCH_REPS"))
	if err != nil {
		n = 9
	}
	if n < 5 {
		n = 5
	}
	if n > 99 {
		n = 99
	}
	return n
}

// run: one warm-up, then reps() timed repetitions; the median.
func run(f func() float64) float64 {
	f()
	v := make([]float64, reps())
	for i := range v {
		v[i] = f()
	}
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func show(name string, v float64, unit string) {
	prec := 0
	if v < 10 {
		prec = 2
	} else if v < 1000 {
		prec = 1
	}
	fmt.Printf("BENCH %s %.*f %s\n", name, prec, v, unit)
}

var sink int

func task(wg *sync.WaitGroup, i int) {
	sink = i
	wg.Done()
}

func batched() float64 {
	var wg sync.WaitGroup
	t0 := time.Now()
	for b := 0; b < batches; b++ {
		wg.Add(batch)
		for i := 0; i < batch; i++ {
			go task(&wg, i)
		}
		wg.Wait()
	}
	return float64(time.Since(t0).Nanoseconds()) / (batch * batches)
}

func oneByOne() float64 {
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < serial; i++ {
		wg.Add(1)
		go task(&wg, i)
		wg.Wait()
	}
	return float64(time.Since(t0).Nanoseconds()) / serial
}

func allAtOnce() float64 {
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(all)
	for i := 0; i < all; i++ {
		go task(&wg, i)
	}
	wg.Wait()
	return float64(time.Since(t0).Nanoseconds()) / all
}

func main() {
	show("spawn.join.go", run(batched), "ns")
	show("spawn.join.serial.go", run(oneByOne), "ns")
	show("spawn.join.all.go", run(allAtOnce), "ns")
}
