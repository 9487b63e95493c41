package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// Targets from the issue ("Proof at the seed's peak").
const (
	targetRate         = 3000 // orders/s and webhook events/s
	targetOrderP99Ms   = 1000
	targetWebhookP99Ms = 50
	targetBacklogRatio = 0.5
	targetIngestRatio  = 0.5
	targetCaughtUpSecs = 5
	keepUpShareOfOffer = 0.99
)

// Check is one row of the table: a figure, its unit, the target it is held against, and the
// verdict (PASS, MISS, or INFO for figures without a target).
type Check struct {
	Phase  string `json:"phase"`
	Figure string `json:"figure"`
	Value  string `json:"value"`
	Target string `json:"target"`
	Status string `json:"status"`
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func checks(r *Results) []Check {
	var out []Check
	add := func(phase, figure, value, target, status string) {
		out = append(out, Check{phase, figure, value, target, status})
	}
	if p := r.Plain; p != nil {
		add("reference", fmt.Sprintf("plain one-row INSERT, %d clients", p.Clients), fmt.Sprintf("%.0f rows/s (p99 %.1f ms; %s; other DBs' active backends %.2f)", p.PerSecond, p.LatencyMs.P99, cpuLine(p.CPU), p.OtherDatabasesActive), quietTarget, infoUnlessNoisy(p.CPU, p.OtherDatabasesActive))
	}
	if rv := r.River; rv != nil {
		add("reference", fmt.Sprintf("River no-op drain, %d jobs, %d workers", rv.Jobs, rv.MaxWorkers), fmt.Sprintf("%.0f jobs/s (%s; other DBs' active backends %.2f)", rv.PerSecond, cpuLine(rv.CPU), rv.OtherDatabasesActive), quietTarget, infoUnlessNoisy(rv.CPU, rv.OtherDatabasesActive))
	}
	for _, v := range r.Variants {
		add("reference", "River no-op drain, "+v.Variant, fmt.Sprintf("%.0f jobs/s (%s; other DBs' active backends %.2f)", v.PerSecond, cpuLine(v.CPU), v.OtherDatabasesActive), quietTarget, infoUnlessNoisy(v.CPU, v.OtherDatabasesActive))
	}
	ingest := func(phase string, ir *InsertRate) {
		if ir == nil {
			return
		}
		if r.Plain != nil && r.Plain.PerSecond > 0 {
			ratio := ir.PerSecond / r.Plain.PerSecond
			add(phase, "outbox one-row INSERT vs plain", fmt.Sprintf("%.0f rows/s = %.2f× plain", ir.PerSecond, ratio),
				fmt.Sprintf("≥ %.2f×", targetIngestRatio), verdict(ratio >= targetIngestRatio))
		} else {
			add(phase, "outbox one-row INSERT", fmt.Sprintf("%.0f rows/s", ir.PerSecond), "—", "INFO")
		}
	}
	ingest("ingest", r.Outbox)

	if o := r.Orders; o != nil {
		ph := fmt.Sprintf("orders %.0f/s × %.0fs", o.OfferedPerSecond, o.DurationSeconds)
		if o.OfferedPerSecond < targetRate {
			add(ph, "offered rate", fmt.Sprintf("%.0f orders/s", o.OfferedPerSecond), fmt.Sprintf("issue's peak %d/s", targetRate), "INFO")
		}
		g := o.Generator
		add(ph, "load generator on schedule", generatorLine(g, o.Clients, "connections", o.InsertLatencyMs.Mean),
			"≤ 0.1% late", map[bool]string{true: "BEHIND", false: "OK"}[g.FellBehind])
		add(ph, "ingest (committed INSERTs)", fmt.Sprintf("%.0f orders/s (INSERT p99 %.1f ms)", o.IngestPerSecond, o.InsertLatencyMs.P99),
			fmt.Sprintf("≥ %.0f/s", keepUpShareOfOffer*o.OfferedPerSecond), verdict(o.IngestPerSecond >= keepUpShareOfOffer*o.OfferedPerSecond))
		add(ph, "dispatched while under load", fmt.Sprintf("%.0f orders/s", o.DispatchedUnderLoadPerSecond),
			fmt.Sprintf("≥ %.0f/s", keepUpShareOfOffer*o.OfferedPerSecond), verdict(o.DispatchedUnderLoadPerSecond >= keepUpShareOfOffer*o.OfferedPerSecond))
		add(ph, "dispatched overall", fmt.Sprintf("%.0f orders/s (last at %.1f s)", o.DispatchedOverallPerSecond, o.LastDispatchSeconds), "—", "INFO")
		add(ph, "insert→dispatched", fmt.Sprintf("p50 %.0f, p95 %.0f, p99 %.0f, max %.0f ms", o.LatencyMs.P50, o.LatencyMs.P95, o.LatencyMs.P99, o.LatencyMs.Max),
			fmt.Sprintf("p99 ≤ %d ms", targetOrderP99Ms), verdict(o.LatencyMs.Count > 0 && o.LatencyMs.P99 <= targetOrderP99Ms))
		add(ph, "orders lost (not dispatched by deadline)", fmt.Sprintf("%d of %d", o.Lost, o.InsertedInDB), "0", verdict(o.Lost == 0 && o.InsertedInDB > 0))
		add(ph, "tasks duplicated at the carrier", fmt.Sprintf("%d (tasks created %d for %d dispatched)", o.DuplicatedTasks, o.CarrierTasksDelta, o.Dispatched),
			"0", verdict(o.DuplicatedTasks == 0 && o.CarrierTasksDelta == int64(o.Dispatched)))
		if r.River != nil && r.River.PerSecond > 0 {
			add(ph, "dispatch under load vs River no-op", fmt.Sprintf("%.2f× (at most offered/River = %.2f×)", o.DispatchedUnderLoadPerSecond/r.River.PerSecond, o.OfferedPerSecond/r.River.PerSecond), "—", "INFO")
		}
		add(ph, "serve CPU / peak RSS", fmt.Sprintf("%.1f CPU-s (%.2f cores) / %.0f MiB", o.CPU.Serve, o.CPU.Serve/o.CPU.WindowSeconds, float64(o.ServePeakRSSBytes)/(1<<20)), "—", "INFO")
		add(ph, "CPU elsewhere", cpuLine(o.CPU), quietTarget, quietVerdict(o.CPU))
		add(ph, "machine CPU per order", cpuPerItemLine(o.CPU, o.Dispatched, "order"), "—", "INFO")
		add(ph, "other databases on this Postgres", otherDBLine(o.Postgres), fmt.Sprintf("≤ %.1f active", quietOtherActive), quietDBVerdict(o.Postgres))
		if len(o.Postgres.ByWait) > 0 {
			add(ph, "Postgres active backends (sampled)", waitLine(o.Postgres.ByWait, 4), "—", "INFO")
			add(ph, "busiest statements (sampled)", queryLine(o.Postgres.ByQuery, 3), "—", "INFO")
		}
	}
	if w := r.Webhooks; w != nil {
		ph := fmt.Sprintf("webhooks %.0f/s × %.0fs", w.OfferedPerSecond, w.DurationSeconds)
		if w.OfferedPerSecond < targetRate {
			add(ph, "offered rate", fmt.Sprintf("%.0f events/s", w.OfferedPerSecond), fmt.Sprintf("issue's %d/s", targetRate), "INFO")
		}
		g := w.Generator
		add(ph, "load generator on schedule", generatorLine(g, w.Concurrency, "concurrent requests", w.HTTPLatencyMs.Mean),
			"≤ 0.1% late", map[bool]string{true: "BEHIND", false: "OK"}[g.FellBehind])
		add(ph, "accepted (200) signed events", fmt.Sprintf("%.0f events/s (%d of %d; %s)", w.AcceptedPerSecond, w.Accepted, g.Planned, statusLine(w.StatusCounts)),
			fmt.Sprintf("≥ %.0f/s", keepUpShareOfOffer*w.OfferedPerSecond), verdict(w.AcceptedPerSecond >= keepUpShareOfOffer*w.OfferedPerSecond && w.Accepted == g.Planned))
		add(ph, "HTTP latency", fmt.Sprintf("p50 %.1f, p99 %.1f, max %.0f ms (from due: p99 %.1f)", w.HTTPLatencyMs.P50, w.HTTPLatencyMs.P99, w.HTTPLatencyMs.Max, w.ScheduledLatencyMs.P99),
			fmt.Sprintf("p99 ≤ %d ms", targetWebhookP99Ms), verdict(w.HTTPLatencyMs.Count > 0 && w.HTTPLatencyMs.P99 <= targetWebhookP99Ms))
		add(ph, "stored events", fmt.Sprintf("%d", w.Stored), fmt.Sprintf("= %d accepted", w.Accepted), verdict(w.Stored == w.Accepted && w.Accepted > 0))
		caught := fmt.Sprintf("%d of %d translated; %d follow-up jobs left", w.Translated, w.Stored, w.QueueBacklog)
		if w.CaughtUpSeconds >= 0 {
			caught = fmt.Sprintf("all %d translated and acted %.1f s after the last event (%.0f/s)", w.Translated, w.CaughtUpSeconds, w.TranslatedPerSec)
		}
		if w.ProcessingNote != "" {
			caught += "; " + w.ProcessingNote
		}
		add(ph, "translation and actions keep up", caught, fmt.Sprintf("caught up ≤ %d s after", targetCaughtUpSecs),
			verdict(w.CaughtUpSeconds >= 0 && w.CaughtUpSeconds <= targetCaughtUpSecs))
		add(ph, "order history rows / order statuses", fmt.Sprintf("%d / %s", w.OrderEvents, statusLine(w.OrderStatuses)), "—", "INFO")
		add(ph, "serve CPU / peak RSS", fmt.Sprintf("%.1f CPU-s (%.2f cores) / %.0f MiB", w.CPU.Serve, w.CPU.Serve/w.CPU.WindowSeconds, float64(w.ServePeakRSSBytes)/(1<<20)), "—", "INFO")
		add(ph, "CPU elsewhere", cpuLine(w.CPU), quietTarget, quietVerdict(w.CPU))
		add(ph, "machine CPU per event", cpuPerItemLine(w.CPU, w.Accepted, "event"), "—", "INFO")
		add(ph, "other databases on this Postgres", otherDBLine(w.Postgres), fmt.Sprintf("≤ %.1f active", quietOtherActive), quietDBVerdict(w.Postgres))
		if len(w.Postgres.ByWait) > 0 {
			add(ph, "Postgres active backends (sampled)", waitLine(w.Postgres.ByWait, 4), "—", "INFO")
			add(ph, "busiest statements (sampled)", queryLine(w.Postgres.ByQuery, 3), "—", "INFO")
		}
	}
	if bl := r.Backlog; bl != nil {
		ph := fmt.Sprintf("backlog %d", bl.Orders)
		if bl.JobsLeftAtStart != 0 {
			add(ph, "jobs of earlier phases still running", fmt.Sprintf("%d", bl.JobsLeftAtStart), "0", "MISS")
		}
		ingest(ph, &bl.Insert)
		target := fmt.Sprintf("≥ %.2f× River", targetBacklogRatio)
		if r.River == nil {
			add(ph, "drain", fmt.Sprintf("%.0f orders/s (no River reference in this run)", bl.PerSecond), target, "MISS")
		} else {
			add(ph, "drain vs River no-op", fmt.Sprintf("%.0f orders/s = %.2f× River's %.0f/s (wall %.1f s)", bl.PerSecond, bl.RatioToRiverNoop, r.River.PerSecond, bl.WallSeconds),
				target, verdict(bl.RatioToRiverNoop >= targetBacklogRatio))
		}
		add(ph, "orders lost / tasks duplicated", fmt.Sprintf("%d / %d (tasks created %d for %d dispatched)", bl.Lost, bl.DuplicatedTasks, bl.CarrierTasksDelta, bl.Dispatched),
			"0 / 0", verdict(bl.Lost == 0 && bl.DuplicatedTasks == 0 && bl.CarrierTasksDelta == int64(bl.Dispatched)))
		add(ph, "serve CPU / peak RSS", fmt.Sprintf("%.1f CPU-s / %.0f MiB", bl.CPU.Serve, float64(bl.ServePeakRSSBytes)/(1<<20)), "—", "INFO")
		add(ph, "CPU elsewhere", cpuLine(bl.CPU), quietTarget, quietVerdict(bl.CPU))
		add(ph, "machine CPU per order (drain only)", cpuPerItemLine(bl.CPU, bl.Dispatched, "order"), "—", "INFO")
		add(ph, "other databases on this Postgres", otherDBLine(bl.Postgres), fmt.Sprintf("≤ %.1f active", quietOtherActive), quietDBVerdict(bl.Postgres))
		if len(bl.Postgres.ByWait) > 0 {
			add(ph, "Postgres active backends (sampled)", waitLine(bl.Postgres.ByWait, 4), "—", "INFO")
			add(ph, "busiest statements (sampled)", queryLine(bl.Postgres.ByQuery, 3), "—", "INFO")
		}
	}
	if c := r.Carrier; c != nil {
		ph := fmt.Sprintf("carrier (%d req/s enforced, %d instances, batch webhook %v)", c.CarrierLimit, c.Instances, c.Webhook)
		for _, l := range []CarrierLoad{c.Low, c.Steady, c.Bulk} {
			if l.Orders == 0 {
				continue
			}
			add(ph, l.What, fmt.Sprintf("all %d dispatched in %.1f s; insert→dispatched p50 %.2f s p99 %.2f s", l.Orders, l.Seconds, l.P50, l.P99), "—", "INFO")
			add(ph, "  carrier requests", fmt.Sprintf("%d (%.4f per order, %d refused for rate); %.0f orders/s = %.1f orders/s per request/s allowed",
				l.Requests, l.PerOrder, l.Refused, l.OrdersPerSecond, l.OrdersPerAllowed), "≤ 1% refused", verdict(float64(l.Refused) <= 0.01*float64(l.Requests)))
			add(ph, "  tasks duplicated", fmt.Sprint(l.Duplicates), "0", verdict(l.Duplicates == 0))
		}
	}
	return out
}

// A run is only as clean as the machine is quiet: CPU used by anything but the service,
// Postgres and the bench (other tests, builds) is reported, and more than this is flagged.
const quietOtherCores = 0.15

var quietTarget = fmt.Sprintf("quiet: other ≤ %.2f cores, other DBs ≤ %.1f active", quietOtherCores, quietOtherActive)

func quietVerdict(c CPUUsage) string {
	if c.WindowSeconds > 0 && c.Other/c.WindowSeconds > quietOtherCores {
		return "NOISY"
	}
	return "OK"
}

// Other databases on the same server share its WAL and disk even when they use little CPU
// (a test suite creating databases from a template writes them whole into the WAL).
const quietOtherActive = 0.2

func quietDBVerdict(a PostgresActivity) string {
	if a.OtherDatabasesActive > quietOtherActive {
		return "NOISY"
	}
	return "OK"
}

func otherDBLine(a PostgresActivity) string {
	line := fmt.Sprintf("%.2f backends active on average", a.OtherDatabasesActive)
	if n := len(a.OtherDatabases); n > 0 {
		line += fmt.Sprintf(" in %d database(s), e.g. %s", n, a.OtherDatabases[0])
	}
	return line
}

func infoUnlessNoisy(c CPUUsage, otherDBActive float64) string {
	if quietVerdict(c) == "NOISY" || otherDBActive > quietOtherActive {
		return "NOISY"
	}
	return "INFO"
}

// generatorLine says how late the generator sent, and, when it fell behind, the most its
// senders could offer given how long the service took to answer (Little's law): a generator
// behind because answers were slow is the service falling behind, not the bench.
func generatorLine(g GeneratorStats, senders int, what string, meanMs float64) string {
	line := fmt.Sprintf("lag p99 %.1f ms, max %.0f ms; %d late >100 ms, %d unsent", g.LagMs.P99, g.LagMs.Max, g.Late, g.Unsent)
	if g.FellBehind && meanMs > 0 {
		line += fmt.Sprintf(" — %d %s at a mean %.1f ms answer offer at most %.0f/s", senders, what, meanMs, float64(senders)/meanMs*1000)
	}
	return line
}

// cpuPerItemLine divides the window's CPU by the items handled in it, and so tells how many a
// second these cores could carry at most if nothing else ran: the ceiling the figures meet.
func cpuPerItemLine(c CPUUsage, n int, noun string) string {
	if n <= 0 || c.MachineBusy <= 0 {
		return "—"
	}
	ms := func(sec float64) float64 { return 1000 * sec / float64(n) }
	return fmt.Sprintf("%.2f ms per %s (postgres %.2f, serve %.2f, sandbox %.2f, bench %.2f, other %.2f) → these %d cores carry at most ~%.0f %ss/s",
		ms(c.MachineBusy), noun, ms(c.Postgres), ms(c.Serve), ms(c.Sandbox), ms(c.Bench), ms(c.Other), c.Cores,
		float64(c.Cores)*1000/ms(c.MachineBusy), noun)
}

func cpuLine(c CPUUsage) string {
	w := math.Max(c.WindowSeconds, 1e-9)
	return fmt.Sprintf("postgres %.2f, sandbox %.2f, bench %.2f, other %.2f (of which other DBs %.2f), machine busy %.2f of %d cores",
		c.Postgres/w, c.Sandbox/w, c.Bench/w, c.Other/w, c.PostgresOther/w, c.MachineBusy/w, c.Cores)
}

func waitLine(ws []WaitShare, n int) string {
	parts := make([]string, 0, n)
	for _, w := range ws[:min(n, len(ws))] {
		parts = append(parts, fmt.Sprintf("%s %s %.0f%%", strings.TrimPrefix(w.Application, "waybill-bench-"), w.Wait, 100*w.Share))
	}
	return strings.Join(parts, ", ")
}

func queryLine(ws []WaitShare, n int) string {
	parts := make([]string, 0, n)
	for _, w := range ws[:min(n, len(ws))] {
		q := w.Query
		if len(q) > 48 {
			q = q[:48] + "…"
		}
		parts = append(parts, fmt.Sprintf("%.0f%% %s: %s", 100*w.Share, strings.TrimPrefix(w.Application, "waybill-bench-"), q))
	}
	return strings.Join(parts, " | ")
}

func statusLine(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// printTable writes the human summary.
func printTable(w io.Writer, r *Results) {
	fmt.Fprintf(w, "\nwaybill-bench %s  mode=%s  %d CPUs, %s RAM, PostgreSQL %s (shared_buffers=%s synchronous_commit=%s max_connections=%s wal_level=%s)\n",
		r.Date, r.Mode, r.Machine.CPUs, r.Machine.MemTotal, r.Postgres.Version, r.Postgres.Settings["shared_buffers"],
		r.Postgres.Settings["synchronous_commit"], r.Postgres.Settings["max_connections"], r.Postgres.Settings["wal_level"])
	if len(r.ServeEnv) > 0 {
		fmt.Fprintf(w, "serve env: %s\n", strings.Join(r.ServeEnv, " "))
	}
	if r.ServeDB != "" {
		fmt.Fprintf(w, "serve DATABASE_URL parameters: %s\n", r.ServeDB)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPHASE\tFIGURE\tVALUE\tTARGET\t")
	last := ""
	for _, c := range r.Checks {
		phase := c.Phase
		if phase == last {
			phase = ""
		}
		last = c.Phase
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", phase, c.Figure, c.Value, c.Target, c.Status)
	}
	tw.Flush()
	for _, e := range r.Errors {
		fmt.Fprintf(w, "ERROR %s\n", e)
	}
	fmt.Fprintln(w, "\nfiles:")
	for _, f := range r.Files {
		fmt.Fprintf(w, "  %s\n", f)
	}
}

// charts draws each phase's timeline.
func charts(r *Results) map[string]*Chart {
	out := map[string]*Chart{}
	series := func(tl []SecondPoint, name, color string, dashed bool, f func(SecondPoint) float64) Series {
		s := Series{Name: name, Color: color, Dashed: dashed}
		for _, p := range tl {
			s.Points = append(s.Points, Point{X: float64(p.Second), Y: f(p)})
		}
		return s
	}
	cpuPanel := func(tl []SecondPoint, cores int) Panel {
		return Panel{Title: fmt.Sprintf("CPU (cores, of %d)", cores), YLabel: "cores", Series: []Series{
			series(tl, "waybill serve", "#2ca02c", false, func(p SecondPoint) float64 { return p.ServeCores }),
			series(tl, "postgres (this database)", "#1f77b4", false, func(p SecondPoint) float64 { return p.PGCores }),
			series(tl, "sandbox carrier", "#9467bd", false, func(p SecondPoint) float64 { return p.SandboxCores }),
			series(tl, "bench (load)", "#ff7f0e", false, func(p SecondPoint) float64 { return p.BenchCores }),
			series(tl, "machine busy", "#7f7f7f", true, func(p SecondPoint) float64 { return p.BusyCores }),
		}}
	}
	if o := r.Orders; o != nil && len(o.Timeline) > 0 {
		tl := o.Timeline
		out["orders"] = &Chart{
			Title:  fmt.Sprintf("waybill-bench orders: %.0f/s offered for %.0f s, %d clients (%s)", o.OfferedPerSecond, o.DurationSeconds, o.Clients, r.Date),
			XLabel: "seconds since the load started",
			Panels: []Panel{
				{Title: "Throughput (orders per second)", YLabel: "orders/s", Series: []Series{
					series(tl, "offered", "#7f7f7f", true, func(p SecondPoint) float64 { return float64(p.Offered) }),
					series(tl, "inserted (committed)", "#1f77b4", false, func(p SecondPoint) float64 { return float64(p.Done) }),
					series(tl, "dispatched (DB, sampled 1/s)", "#2ca02c", false, func(p SecondPoint) float64 { return float64(p.Processed) }),
				}},
				{Title: "insert → dispatched latency, by second of insert (ms)", YLabel: "ms", Series: []Series{
					series(tl, "p99", "#d62728", false, func(p SecondPoint) float64 { return float64(p.P99Ms) }),
					series(tl, "p50", "#ff7f0e", false, func(p SecondPoint) float64 { return float64(p.P50Ms) }),
				}},
				cpuPanel(tl, o.CPU.Cores),
			},
			Markers: []Marker{{X: o.DurationSeconds, Label: "load stops"}},
		}
	}
	if w := r.Webhooks; w != nil && len(w.Timeline) > 0 {
		tl := w.Timeline
		out["webhooks"] = &Chart{
			Title:  fmt.Sprintf("waybill-bench webhooks: %.0f signed events/s offered for %.0f s (%s)", w.OfferedPerSecond, w.DurationSeconds, r.Date),
			XLabel: "seconds since the load started",
			Panels: []Panel{
				{Title: "Throughput (events per second)", YLabel: "events/s", Series: []Series{
					series(tl, "offered", "#7f7f7f", true, func(p SecondPoint) float64 { return float64(p.Offered) }),
					series(tl, "accepted (200)", "#1f77b4", false, func(p SecondPoint) float64 { return float64(p.Done) }),
					series(tl, "translated (DB, sampled 1/s)", "#2ca02c", false, func(p SecondPoint) float64 { return float64(p.Processed) }),
				}},
				{Title: "HTTP latency, by second of send (ms)", YLabel: "ms", Series: []Series{
					series(tl, "p99", "#d62728", false, func(p SecondPoint) float64 { return float64(p.P99Ms) }),
					series(tl, "p50", "#ff7f0e", false, func(p SecondPoint) float64 { return float64(p.P50Ms) }),
				}},
				cpuPanel(tl, w.CPU.Cores),
			},
			Markers: []Marker{{X: w.DurationSeconds, Label: "load stops"}},
		}
	}
	if bl := r.Backlog; bl != nil && len(bl.Timeline) > 0 {
		tl := bl.Timeline
		out["backlog"] = &Chart{
			Title:  fmt.Sprintf("waybill-bench backlog: %d orders drained by a fresh service (%s)", bl.Orders, r.Date),
			XLabel: "seconds since `waybill serve` was started",
			Panels: []Panel{
				{Title: "Dispatched (orders per second, DB sampled 1/s)", YLabel: "orders/s", Series: []Series{
					series(tl, "dispatched", "#2ca02c", false, func(p SecondPoint) float64 { return float64(p.Processed) }),
				}},
				cpuPanel(tl, bl.CPU.Cores),
			},
		}
	}
	return out
}
