package background

import "context"

// Group is loops started together and stopped together. The zero value is ready to use; it is
// not safe for concurrent use.
type Group struct {
	stops []func()
}

// Start runs loop in a goroutine of its own until Stop. Its context keeps ctx's values but not its
// end: a loop that others wait on (a group commit, a batch tracker) must outlive the signal that
// stops the service, and stops only when Stop says so, once what depends on it has stopped.
func (g *Group) Start(ctx context.Context, loop func(context.Context)) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		loop(ctx)
	}()
	g.stops = append(g.stops, func() { cancel(); <-done })
}

// Stop ends the loops, the last started first, each returned before the next is told to stop.
func (g *Group) Stop() {
	for i := len(g.stops) - 1; i >= 0; i-- {
		g.stops[i]()
	}
	g.stops = nil
}
