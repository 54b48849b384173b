// go_runtime: a static Go program (CGO_ENABLED=0): goroutines, channels, sync.WaitGroup,
// time.Sleep, a forced GC, os.ReadFile of its own binary and a recovered nil-dereference panic.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

func main() {
	var wg sync.WaitGroup
	ch := make(chan int, 10)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(n int) { defer wg.Done(); ch <- n * n }(i)
	}
	wg.Wait()
	close(ch)
	sum := 0
	for v := range ch {
		sum += v
	}
	fmt.Println("sum of squares:", sum)
	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	fmt.Println("slept >= 20ms:", time.Since(start) >= 20*time.Millisecond)
	runtime.GC()
	data, err := os.ReadFile("/proc/self/exe")
	fmt.Println("read own binary:", err == nil && len(data) > 1000)
	defer func() { fmt.Println("recovered:", recover() != nil) }()
	var p *int
	fmt.Println(*p)
}
