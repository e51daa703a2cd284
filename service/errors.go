package service

import (
	"errors"
	"fmt"
)

// Kind classifies a failure the way API clients see it; the D-Bus layer
// maps each kind to its error name.
type Kind int

const (
	Failed Kind = iota
	InvalidArgument
	NotFound
	Exists
	NotOwner
	QuotaExceeded
	SubnetConflict
	BridgeNotAllowed
	Unsupported
	AccessDenied
	InteractiveAuthorizationRequired
)

// Error is a failure with a kind and a message meant for the caller.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error of the given kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap marks err as kind, keeping err as the cause.
func Wrap(kind Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: err}
}

// KindOf reports the kind of err; errors without one are Failed.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Failed
}
