// A small net/http server for the network tests (static: CGO_ENABLED=0).
//
//	httpd [ADDR]        listen on ADDR (default :8080) and serve until /quit
//
// Routes (every body is deterministic, so a client can check it byte for byte):
//
//	/              "hello from httpd\n"
//	/bytes?n=N     N bytes of pattern(i) = (i*2654435761 mod 2^32) >> 24 (as sockets.c)
//	/sha256        POST: the SHA-256 (hex) of the request body and its length
//	/slow?ms=M     waits M ms, then "slept M\n" (concurrent requests overlap)
//	/count         how many requests the server has answered, this one included
//	/quit?code=C   answers "bye\n", then the process exits with status C
//
// It prints "listening on ADDR" on stdout once the socket is bound and "exiting C" before
// it exits.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

func pattern(i uint64) byte { return byte(uint32(i*2654435761) >> 24) }

func main() {
	addr := ":8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	var served atomic.Int64
	quit := make(chan int, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "hello from httpd\n")
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseUint(r.URL.Query().Get("n"), 10, 64)
		if err != nil {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatUint(n, 10))
		buf := make([]byte, 64*1024)
		for off := uint64(0); off < n; {
			k := uint64(len(buf))
			if n-off < k {
				k = n - off
			}
			for i := uint64(0); i < k; i++ {
				buf[i] = pattern(off + i)
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			off += k
		}
	})
	mux.HandleFunc("/sha256", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%x %d\n", h.Sum(nil), n)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slept %d\n", ms)
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d\n", served.Load()+1)
	})
	mux.HandleFunc("/quit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		io.WriteString(w, "bye\n")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		quit <- code
	})
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		served.Add(1)
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpd:", err)
		os.Exit(2)
	}
	fmt.Printf("listening on %s\n", addr)
	go func() {
		if err := http.Serve(ln, counted); err != nil {
			fmt.Fprintln(os.Stderr, "httpd: serve:", err)
			os.Exit(3)
		}
	}()
	code := <-quit
	time.Sleep(100 * time.Millisecond) // let the "bye" response go out
	fmt.Printf("exiting %d\n", code)
	os.Exit(code)
}
