// Signals and preemption as Go programs see them (static: CGO_ENABLED=0).
//
//	gosignals serve ADDR   an HTTP server with signal.Notify(SIGINT, SIGTERM): prints
//	                       "listening on ADDR", and on a signal "shutting down on NAME",
//	                       shuts the server down gracefully and exits 0
//	gosignals preempt      with GOMAXPROCS=1, a goroutine spins in a loop without calls;
//	                       the main goroutine still wakes from a 100 ms sleep (Go's
//	                       asynchronous preemption, SIGURG) and prints "main ran"
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

var sink uint64

func spin() {
	for i := uint64(0); ; i++ {
		sink = i
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gosignals serve ADDR | preempt")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "preempt":
		runtime.GOMAXPROCS(1)
		go spin()
		time.Sleep(100 * time.Millisecond)
		fmt.Println("main ran")
	case "serve":
		addr := ":8080"
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
		listener, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "hello")
		})}
		go server.Serve(listener)
		fmt.Println("listening on", addr)
		got := <-signals
		fmt.Println("shutting down on", got)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := server.Shutdown(ctx); err != nil {
			fmt.Println("shutdown:", err)
			os.Exit(1)
		}
		fmt.Println("clean exit")
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
