// Command rr measures TCP round trips, as netperf's TCP_RR does with one
// byte each way: "rr serve ADDR" echoes every byte back to each client;
// "rr HOST:PORT N" makes N round trips and prints the mean in µs.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rr:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 2 && args[0] == "serve":
		return serve(args[1])
	case len(args) == 2:
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 {
			return fmt.Errorf("round trips: %q is not a positive number", args[1])
		}
		return ping(args[0], n)
	}
	return fmt.Errorf("usage: rr serve ADDR | rr HOST:PORT N")
}

func serve(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		conn, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			io.Copy(conn, conn)
		}()
	}
}

func ping(addr string, n int) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The first round trip sets the connection up on both ends: not timed.
	if err := roundTrip(conn); err != nil {
		return err
	}
	start := time.Now()
	for range n {
		if err := roundTrip(conn); err != nil {
			return err
		}
	}
	fmt.Printf("%.1f\n", float64(time.Since(start).Microseconds())/float64(n))
	return nil
}

func roundTrip(conn net.Conn) error {
	b := []byte{1}
	if _, err := conn.Write(b); err != nil {
		return err
	}
	_, err := io.ReadFull(conn, b)
	return err
}
