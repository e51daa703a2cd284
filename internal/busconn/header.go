package busconn

import (
	"encoding/binary"

	"github.com/godbus/dbus/v5"
)

// headerOnly recovers what answering a message needs — type, flags,
// sender, fd count (the serial is read by the reader) — and, for a reply,
// what it answers, from a message godbus would not decode or that was not
// read whole. Nothing here trusts the bus to have checked the message:
// every read is bounds-checked and a field that does not parse is left out.
func headerOnly(raw []byte) *dbus.Message {
	m := &dbus.Message{Headers: map[dbus.HeaderField]dbus.Variant{}}
	if len(raw) < 16 {
		return m
	}
	var order binary.ByteOrder = binary.LittleEndian
	if raw[0] == 'B' {
		order = binary.BigEndian
	}
	m.Type, m.Flags = dbus.Type(raw[1]), dbus.Flags(raw[2])
	end := 16 + uint64(order.Uint32(raw[12:16]))
	if end > uint64(len(raw)) {
		return m
	}
	p := fieldParser{raw: raw[:end], pos: 16, order: order}
	for p.pos < len(p.raw) {
		p.align(8)
		code, sig, ok := p.fieldStart()
		if !ok {
			break
		}
		switch {
		case code == byte(dbus.FieldSender) && sig == "s":
			if s, ok := p.str(); ok {
				m.Headers[dbus.FieldSender] = dbus.MakeVariant(s)
				continue
			}
		case (code == byte(dbus.FieldUnixFDs) || code == byte(dbus.FieldReplySerial)) && sig == "u":
			if n, ok := p.u32(); ok {
				m.Headers[dbus.HeaderField(code)] = dbus.MakeVariant(n)
				continue
			}
		case sig == "s" || sig == "o":
			if _, ok := p.str(); ok {
				continue
			}
		case sig == "g":
			if _, ok := p.sig(); ok {
				continue
			}
		case sig == "u":
			if _, ok := p.u32(); ok {
				continue
			}
		}
		break
	}
	return m
}

type fieldParser struct {
	raw   []byte
	pos   int
	order binary.ByteOrder
}

func (p *fieldParser) align(n int) { p.pos = (p.pos + n - 1) / n * n }

func (p *fieldParser) fieldStart() (code byte, sig string, ok bool) {
	if p.pos+2 > len(p.raw) {
		return 0, "", false
	}
	code = p.raw[p.pos]
	p.pos++
	s, ok := p.sig()
	return code, s, ok
}

func (p *fieldParser) sig() (string, bool) {
	if p.pos >= len(p.raw) {
		return "", false
	}
	n := int(p.raw[p.pos])
	start := p.pos + 1
	if start+n+1 > len(p.raw) {
		return "", false
	}
	p.pos = start + n + 1
	return string(p.raw[start : start+n]), true
}

func (p *fieldParser) u32() (uint32, bool) {
	p.align(4)
	if p.pos+4 > len(p.raw) {
		return 0, false
	}
	v := p.order.Uint32(p.raw[p.pos:])
	p.pos += 4
	return v, true
}

func (p *fieldParser) str() (string, bool) {
	n, ok := p.u32()
	if !ok || uint64(p.pos)+uint64(n)+1 > uint64(len(p.raw)) {
		return "", false
	}
	s := string(p.raw[p.pos : p.pos+int(n)])
	p.pos += int(n) + 1
	return s, true
}
