package busconn

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

func parseAddress(address string) (*net.UnixAddr, error) {
	for _, entry := range strings.Split(address, ";") {
		transport, params, ok := strings.Cut(entry, ":")
		if !ok || transport != "unix" {
			continue
		}
		for _, kv := range strings.Split(params, ",") {
			key, value, _ := strings.Cut(kv, "=")
			value, err := url.PathUnescape(value)
			if err != nil {
				return nil, fmt.Errorf("bad bus address %q: %w", address, err)
			}
			switch key {
			case "path":
				return &net.UnixAddr{Name: value, Net: "unix"}, nil
			case "abstract":
				return &net.UnixAddr{Name: "@" + value, Net: "unix"}, nil
			}
		}
	}
	return nil, fmt.Errorf("bus address %q has no unix:path= or unix:abstract= entry", address)
}

// authenticate does EXTERNAL authentication and asks for fd passing.
func authenticate(sock *net.UnixConn) error {
	uid := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	for _, step := range []struct{ send, want string }{
		{"\x00AUTH EXTERNAL " + uid + "\r\n", "OK "},
		{"NEGOTIATE_UNIX_FD\r\n", "AGREE_UNIX_FD"},
	} {
		if _, err := sock.Write([]byte(step.send)); err != nil {
			return err
		}
		line, err := authLine(sock)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, step.want) {
			return fmt.Errorf("bus answered %q to %q", line, strings.TrimSpace(step.send))
		}
	}
	_, err := sock.Write([]byte("BEGIN\r\n"))
	return err
}

// authLine reads one line byte by byte, so nothing after it is consumed.
func authLine(sock *net.UnixConn) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		if len(line) > 512 {
			return "", fmt.Errorf("bus sent an overlong line during authentication")
		}
		if _, err := io.ReadFull(sock, b); err != nil {
			return "", err
		}
		line = append(line, b[0])
	}
	return string(line[:len(line)-2]), nil
}
