// workers.go: a Go program (its runtime starts many threads, each with its own sigaltstack,
// and installs SA_ONSTACK handlers for every signal) computing on 8 goroutines for a few
// seconds. Writes PIDFILE once the workers run; prints "result N" at the end. The harness
// compares N with an uninterrupted run after dump/kill/restore mid-run.
// Usage: workers PIDFILE
package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	var mu sync.Mutex
	total := uint64(0)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				s := uint64(0)
				for k := 0; k < 6000000; k++ {
					s = s*31 + uint64(k^w^i)
				}
				mu.Lock()
				total += s % 1000003
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}(w)
	}
	os.WriteFile(os.Args[1]+".tmp", []byte(fmt.Sprintf("%d\n", os.Getpid())), 0644)
	os.Rename(os.Args[1]+".tmp", os.Args[1])
	wg.Wait()
	fmt.Println("result", total)
}
