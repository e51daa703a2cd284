package service

import "log/slog"

// undoStep reverses one side effect. Steps must be idempotent: teardown may
// run after the thing they undo already vanished (a tap whose last fd closed,
// a bridge deleted by an admin).
type undoStep struct {
	what string
	run  func() error
}

// undoStack is a resource's ordered list of undo steps. Setup pushes a step
// before or together with each side effect; teardown and rollback pop them
// all in reverse, so hooks and built-in steps unwind in one order.
type undoStack struct {
	steps []undoStep
}

func (u *undoStack) push(what string, run func() error) {
	u.steps = append(u.steps, undoStep{what: what, run: run})
}

// unwind runs every step, newest first. A failing step is logged and the
// rest still run: teardown must not stop half-way.
func (u *undoStack) unwind(log *slog.Logger) {
	for i := len(u.steps) - 1; i >= 0; i-- {
		s := u.steps[i]
		if err := s.run(); err != nil {
			log.Warn("teardown step failed", "step", s.what, "err", err)
		}
	}
	u.steps = nil
}
