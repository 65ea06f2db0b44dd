// SPDX-License-Identifier: MIT
// http_go.go - the Go net/http anchor of the HTTP benchmark: the same
// "Hello, World!" answer as examples/http_server.c, with the standard
// library only. Run with GOMAXPROCS=1 to compare with one hub.
//
//	http_go [port]     prints "listening on port N", serves until killed
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	port := "8080"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	ln, err := net.Listen("tcp4", ":"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on port %d\n", ln.Addr().(*net.TCPAddr).Port)
	body := []byte("Hello, World!")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"text/plain"}
		h["Server"] = []string{"go"}
		w.Write(body)
	})
	fmt.Fprintln(os.Stderr, http.Serve(ln, nil))
	os.Exit(1)
}
