package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

var errNoJournal = errors.New("stderr is not the journal")

// journalHandler sends each record to the journal with its attributes as
// fields, so `journalctl -u netgrantd NETGRANT_NETWORK=lab` works.
type journalHandler struct {
	level slog.Level
	attrs []slog.Attr
	group string
}

// newJournalHandler works only when systemd connected stderr to the
// journal; a daemon started by hand keeps logging to its terminal.
func newJournalHandler(level slog.Level) (slog.Handler, error) {
	isJournal, err := journal.StderrIsJournalStream()
	if err != nil {
		return nil, err
	}
	if !isJournal || !journal.Enabled() {
		return nil, errNoJournal
	}
	return &journalHandler{level: level}, nil
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *journalHandler) Handle(_ context.Context, r slog.Record) error {
	vars := map[string]string{}
	msg := r.Message
	add := func(a slog.Attr) {
		key := strings.ToUpper(h.group + a.Key)
		vars["NETGRANT_"+journalField(key)] = a.Value.String()
		msg += fmt.Sprintf(" %s=%v", a.Key, a.Value)
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { add(a); return true })
	return journal.Send(msg, journalPriority(r.Level), vars)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &journalHandler{level: h.level, attrs: append(append([]slog.Attr{}, h.attrs...), attrs...), group: h.group}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{level: h.level, attrs: h.attrs, group: h.group + name + "_"}
}

// journalField keeps only what journal field names allow.
func journalField(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func journalPriority(l slog.Level) journal.Priority {
	switch {
	case l >= slog.LevelError:
		return journal.PriErr
	case l >= slog.LevelWarn:
		return journal.PriWarning
	case l >= slog.LevelInfo:
		return journal.PriInfo
	}
	return journal.PriDebug
}
