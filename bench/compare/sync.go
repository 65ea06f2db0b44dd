// SPDX-License-Identifier: MIT
// sync.go - anchor: the Go form of bench/sync.c. Queue hand-off through a
// buffered channel of 64, select over 4 ready channels with a refill,
// sync.Mutex lock/unlock uncontended and with 4 goroutines holding it across
// runtime.Gosched, and a map of 100,000 trivial jobs on goroutines bounded
// by a semaphore channel of 100. Run with GOMAXPROCS=1 pinned to one CPU.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const (
	handoffN   = 1000000
	handoffCap = 64
	selectN    = 1000000
	semN       = 2000000
	contG      = 4
	contN      = 250000
	mapN       = 100000
	mapSize    = 100
)

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

func per(t0 time.Time, n int) float64 {
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func handoff() float64 {
	q := make(chan uintptr, handoffCap)
	var sum uint64
	t0 := time.Now()
	go func() {
		for i := 0; i < handoffN; i++ {
			q <- uintptr(i + 1)
		}
	}()
	for i := 0; i < handoffN; i++ {
		sum = sum*31 + uint64(<-q)
	}
	ns := per(t0, handoffN)
	if sum == 0 {
		panic("checksum")
	}
	return ns
}

func select4() float64 {
	var c [4]chan uintptr
	var hits [4]int
	for i := range c {
		c[i] = make(chan uintptr, 1)
		c[i] <- uintptr(i)
	}
	t0 := time.Now()
	for r := 0; r < selectN; r++ {
		select {
		case v := <-c[0]:
			hits[0]++
			c[0] <- v
		case v := <-c[1]:
			hits[1]++
			c[1] <- v
		case v := <-c[2]:
			hits[2]++
			c[2] <- v
		case v := <-c[3]:
			hits[3]++
			c[3] <- v
		}
	}
	ns := per(t0, selectN)
	for _, h := range hits {
		if h < selectN/8 {
			panic("select fairness")
		}
	}
	return ns
}

func mutexUncontended() float64 {
	var mu sync.Mutex
	t0 := time.Now()
	for i := 0; i < semN; i++ {
		mu.Lock()
		mu.Unlock()
	}
	return per(t0, semN)
}

func mutexContended() float64 {
	var mu sync.Mutex
	var wg sync.WaitGroup
	inCS := 0
	t0 := time.Now()
	for g := 0; g < contG; g++ {
		wg.Add(1)
		go func() {
			for i := 0; i < contN; i++ {
				mu.Lock()
				inCS++
				if inCS != 1 {
					panic("mutex admitted two")
				}
				runtime.Gosched()
				inCS--
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return per(t0, contG*contN)
}

var mapArgs, mapRes []uintptr

func poolMap() float64 {
	sem := make(chan struct{}, mapSize)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < mapN; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			mapRes[i] = mapArgs[i]*2 + 1
			<-sem
			wg.Done()
		}(i)
	}
	wg.Wait()
	ns := per(t0, mapN)
	for i := range mapRes {
		if mapRes[i] != uintptr(i)*2+1 {
			panic("map result")
		}
	}
	return ns
}

func show(name string, v float64) {
	prec := 0
	if v < 10 {
		prec = 2
	} else if v < 1000 {
		prec = 1
	}
	fmt.Printf("BENCH %s %.*f ns\n", name, prec, v)
}

func main() {
	show("sync.queue.handoff.go", run(handoff))
	show("sync.select4.go", run(select4))
	show("sync.sem.uncontended.go", run(mutexUncontended))
	show("sync.sem.contended.go", run(mutexContended))
	mapArgs = make([]uintptr, mapN)
	mapRes = make([]uintptr, mapN)
	for i := range mapArgs {
		mapArgs[i] = uintptr(i)
	}
	show("sync.pool.map.go", run(poolMap))
}
