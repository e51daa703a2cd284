package harness

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/busconn"
	"github.com/netgrant/netgrant/internal/names"
)

// FuzzReport is what a client's fuzz run sent and got back.
type FuzzReport struct {
	Sent    int            `json:"sent"`
	Replies map[string]int `json:"replies"` // by error name; "" for a method return
	// NoReply counts calls that expected a reply and got none within
	// fuzzReplyWait: each is a call the daemon dropped.
	NoReply int `json:"no_reply"`
}

// fuzzReplyWait is how long a fuzzed call may wait for its reply before it
// counts as dropped; far longer than any answer takes, it only bounds a
// broken daemon.
const fuzzReplyWait = 60 * time.Second

// Fuzz makes the client send count random messages to netgrantd, from a
// generator seeded with seed: random signatures and bodies (always valid
// D-Bus, so the bus passes them on), 0–8 fds each, every method of every
// interface netgrant has and some it has not, random paths and flags. It
// returns when every call expecting a reply was answered.
func (c *Client) Fuzz(seed int64, count int) FuzzReport {
	c.t.Helper()
	resp := c.roundTrip(request{Op: "fuzz", Seed: seed, Count: count})
	return *resp.Fuzz
}

var fuzzInterfaces = map[string][]string{
	names.ManagerInterface:                  {"CreateTap", "AttachBridge", "CreateNATNetwork", "GetNetwork"},
	names.NetworkInterface:                  {"Release", "Delete", "AddPortForward", "RemovePortForward"},
	names.TapInterface:                      {"Delete"},
	"org.freedesktop.DBus.Properties":       {"Get", "GetAll", "Set"},
	"org.freedesktop.DBus.Introspectable":   {"Introspect"},
	"org.freedesktop.DBus.ObjectManager":    {"GetManagedObjects"},
	"org.freedesktop.DBus.Peer":             {"Ping", "GetMachineId"},
	"org.netgrant.NetGrant1.NoSuchThing":    {"Nothing"},
	"org.freedesktop.DBus.Properties.Extra": {"Get"},
}

// methodSignatures are the real ones, so that some fuzzed calls get past
// the signature check into the methods themselves.
var methodSignatures = []string{"a{sv}", "ssa{sv}", "sa{sv}", "s", "ss", "ssv", "", "sqsqa{sv}", "sq"}

func (s *clientState) fuzz(seed int64, count int) (*FuzzReport, error) {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devNull.Close()
	gen := &fuzzGen{rnd: rand.New(rand.NewSource(seed))}
	report := &FuzzReport{Replies: map[string]int{}}
	var mu sync.Mutex
	record := func(name string, noReply bool) {
		mu.Lock()
		defer mu.Unlock()
		if noReply {
			report.NoReply++
		} else {
			report.Replies[name]++
		}
	}
	// Calls are made by a few goroutines at once, as a hostile client
	// would, but never more than the bus lets one connection have pending.
	const workers = 16
	work := make(chan []byte, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for raw := range work {
				s.fuzzSend(raw, int(devNull.Fd()), record)
			}
		}()
	}
	for range count {
		raw, err := gen.message()
		if err != nil {
			close(work)
			wg.Wait()
			return nil, err
		}
		work <- raw
		report.Sent++
	}
	close(work)
	wg.Wait()
	return report, nil
}

// fuzzSend sends one generated message; its fd count is in its header.
func (s *clientState) fuzzSend(raw []byte, fd int, record func(string, bool)) {
	msg, err := dbus.DecodeMessage(bytes.NewReader(raw))
	if err != nil {
		record("generator: "+err.Error(), false)
		return
	}
	n, _ := msg.Headers[dbus.FieldUnixFDs].Value().(uint32)
	fds := make([]int, n)
	for i := range fds {
		fds[i] = fd
	}
	if msg.Flags&dbus.FlagNoReplyExpected != 0 {
		if _, err := s.bus.SendRaw(raw, fds); err != nil {
			record("send: "+err.Error(), false)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), fuzzReplyWait)
	defer cancel()
	reply, err := s.bus.CallRaw(ctx, raw, fds)
	var callErr *busconn.Error
	switch {
	case errors.As(err, &callErr):
		record(callErr.Name, false)
	case errors.Is(err, context.DeadlineExceeded):
		record("", true)
	case err != nil:
		record("call: "+err.Error(), false)
	default:
		reply.CloseFiles()
		record("", false)
	}
}

type fuzzGen struct {
	rnd *rand.Rand
}

func (g *fuzzGen) pick(options []string) string { return options[g.rnd.Intn(len(options))] }

func (g *fuzzGen) message() ([]byte, error) {
	ifaces := make([]string, 0, len(fuzzInterfaces))
	for name := range fuzzInterfaces {
		ifaces = append(ifaces, name)
	}
	sort.Strings(ifaces)
	iface := g.pick(ifaces)
	member := g.pick(fuzzInterfaces[iface])
	if g.rnd.Intn(10) == 0 {
		member = g.pick([]string{"CreateTap", "Delete", "Get", "X", "Release"})
	}
	sig := g.pick(methodSignatures)
	if g.rnd.Intn(2) == 0 {
		sig = g.signature(1 + g.rnd.Intn(4))
	}
	nfds := g.rnd.Intn(9)
	if strings.Contains(sig, "h") && nfds == 0 {
		nfds = 1
	}
	body, err := g.values(sig, nfds)
	if err != nil {
		return nil, err
	}
	msg := busconn.NewCall(names.BusName, g.path(), iface, member, 0)
	if g.rnd.Intn(8) == 0 {
		delete(msg.Headers, dbus.FieldInterface)
	}
	msg.Body = body
	if len(body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.ParseSignatureMust(sig))
	}
	if nfds > 0 {
		msg.Headers[dbus.FieldUnixFDs] = dbus.MakeVariant(uint32(nfds))
	}
	switch g.rnd.Intn(4) {
	case 0:
		msg.Flags = dbus.FlagNoReplyExpected
	case 1:
		msg.Flags = dbus.FlagAllowInteractiveAuthorization
	}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("encoding %q: %w", sig, err)
	}
	return buf.Bytes(), nil
}

func (g *fuzzGen) path() dbus.ObjectPath {
	return dbus.ObjectPath(g.pick([]string{
		string(names.ManagerPath), string(names.ManagerPath), string(names.ManagerPath),
		"/", "/org", "/org/netgrant", string(names.ManagerPath) + "/network", string(names.ManagerPath) + "/tap",
		string(names.NetworkPath("lab")), string(names.NetworkPath("user-4001")), string(names.TapPath("ngtap0")),
		string(names.ManagerPath) + "/tap/_2e_2e", "/org/freedesktop/DBus",
	}))
}

var basicTypes = []string{"y", "b", "n", "q", "i", "u", "x", "t", "d", "s", "o", "g", "h"}

// keyTypes are the basic types godbus can encode as map keys (not bool, nor a Signature,
// a struct in Go).
var keyTypes = []string{"y", "n", "q", "i", "u", "x", "t", "d", "s", "o", "h"}

// signature returns a random complete type, depth-limited.
func (g *fuzzGen) signature(depth int) string {
	if depth <= 0 {
		return g.pick(basicTypes)
	}
	switch g.rnd.Intn(7) {
	case 0:
		return "a" + g.signature(depth-1)
	case 1:
		return "a{" + g.pick(keyTypes) + g.signature(depth-1) + "}"
	case 2:
		n := 1 + g.rnd.Intn(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = g.signature(depth - 1)
		}
		return "(" + strings.Join(parts, "") + ")"
	case 3:
		return "v"
	}
	return g.pick(basicTypes)
}

// values returns one value for each complete type in sig.
func (g *fuzzGen) values(sig string, nfds int) ([]any, error) {
	parsed, err := dbus.ParseSignature(sig)
	if err != nil {
		return nil, err
	}
	var out []any
	for _, single := range splitSignature(parsed.String()) {
		out = append(out, g.value(single, nfds, 3).Interface())
	}
	return out, nil
}

// splitSignature splits a signature into its complete types.
func splitSignature(sig string) []string {
	var out []string
	for sig != "" {
		n := completeTypeLen(sig)
		out = append(out, sig[:n])
		sig = sig[n:]
	}
	return out
}

func completeTypeLen(sig string) int {
	switch sig[0] {
	case 'a':
		return 1 + completeTypeLen(sig[1:])
	case '(', '{':
		depth := 0
		for i := 0; i < len(sig); i++ {
			switch sig[i] {
			case '(', '{':
				depth++
			case ')', '}':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	}
	return 1
}

var randomStrings = []string{"", "lab", "network", "bridge", "queues", "mac", "mtu", "subnet", "persistent", "dhcp",
	"ngtap0", "ng-lab", "10.97.0.0/24", "52:54:00:12:34:56", "org.netgrant.NetGrant1.Manager", "Version", "Leases",
	"user-4001", "-x", "a/b", strings.Repeat("z", 300), "café", "tcp", "udp"}

// value returns a random value of the complete type sig as godbus encodes
// it (structs as Go structs, so their signature is kept).
func (g *fuzzGen) value(sig string, nfds int, budget int) reflect.Value {
	switch sig[0] {
	case 'y':
		return reflect.ValueOf(byte(g.rnd.Intn(256)))
	case 'b':
		return reflect.ValueOf(g.rnd.Intn(2) == 0)
	case 'n':
		return reflect.ValueOf(int16(g.rnd.Uint32()))
	case 'q':
		return reflect.ValueOf(uint16(g.rnd.Uint32()))
	case 'i':
		return reflect.ValueOf(int32(g.rnd.Uint32()))
	case 'u':
		return reflect.ValueOf(g.pickUint32())
	case 'x':
		return reflect.ValueOf(int64(g.rnd.Uint64()))
	case 't':
		return reflect.ValueOf(g.rnd.Uint64())
	case 'd':
		return reflect.ValueOf(g.rnd.NormFloat64())
	case 's':
		return reflect.ValueOf(g.pick(randomStrings))
	case 'o':
		return reflect.ValueOf(g.path())
	case 'g':
		return reflect.ValueOf(dbus.ParseSignatureMust(g.signature(1)))
	case 'h':
		return reflect.ValueOf(dbus.UnixFDIndex(g.rnd.Intn(nfds)))
	case 'v':
		inner := g.signature(1)
		if budget <= 0 || strings.Contains(inner, "h") && nfds == 0 {
			inner = "s"
		}
		return reflect.ValueOf(dbus.MakeVariantWithSignature(g.value(inner, nfds, budget-1).Interface(), dbus.ParseSignatureMust(inner)))
	case 'a':
		n := g.rnd.Intn(4)
		if budget <= 0 {
			n = 0
		}
		if sig[1] == '{' {
			keySig, valSig := sig[2:3], sig[3:len(sig)-1]
			m := reflect.MakeMap(reflect.MapOf(typeOf(keySig), typeOf(valSig)))
			for range n {
				m.SetMapIndex(g.value(keySig, nfds, budget-1), g.value(valSig, nfds, budget-1))
			}
			return m
		}
		elem := sig[1:]
		s := reflect.MakeSlice(reflect.SliceOf(typeOf(elem)), 0, n)
		for range n {
			s = reflect.Append(s, g.value(elem, nfds, budget-1))
		}
		return s
	case '(':
		parts := splitSignature(sig[1 : len(sig)-1])
		st := reflect.New(typeOf(sig)).Elem()
		for i, p := range parts {
			st.Field(i).Set(g.value(p, nfds, budget-1))
		}
		return st
	}
	panic("fuzz: unknown type " + sig)
}

func (g *fuzzGen) pickUint32() uint32 {
	if g.rnd.Intn(2) == 0 {
		return uint32(g.rnd.Intn(20))
	}
	return g.rnd.Uint32()
}

// typeOf is the Go type godbus encodes as sig.
func typeOf(sig string) reflect.Type {
	switch sig[0] {
	case 'y':
		return reflect.TypeOf(byte(0))
	case 'b':
		return reflect.TypeOf(false)
	case 'n':
		return reflect.TypeOf(int16(0))
	case 'q':
		return reflect.TypeOf(uint16(0))
	case 'i':
		return reflect.TypeOf(int32(0))
	case 'u':
		return reflect.TypeOf(uint32(0))
	case 'x':
		return reflect.TypeOf(int64(0))
	case 't':
		return reflect.TypeOf(uint64(0))
	case 'd':
		return reflect.TypeOf(float64(0))
	case 's':
		return reflect.TypeOf("")
	case 'o':
		return reflect.TypeOf(dbus.ObjectPath(""))
	case 'g':
		return reflect.TypeOf(dbus.Signature{})
	case 'h':
		return reflect.TypeOf(dbus.UnixFDIndex(0))
	case 'v':
		return reflect.TypeOf(dbus.Variant{})
	case 'a':
		if sig[1] == '{' {
			return reflect.MapOf(typeOf(sig[2:3]), typeOf(sig[3:len(sig)-1]))
		}
		return reflect.SliceOf(typeOf(sig[1:]))
	case '(':
		parts := splitSignature(sig[1 : len(sig)-1])
		fields := make([]reflect.StructField, len(parts))
		for i, p := range parts {
			fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: typeOf(p)}
		}
		return reflect.StructOf(fields)
	}
	panic("fuzz: unknown type " + sig)
}
