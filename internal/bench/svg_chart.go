package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Point is one (x, y) sample of a series.
type Point struct{ X, Y float64 }

// Series is one line on a panel. A NaN Y leaves a gap.
type Series struct {
	Name   string
	Color  string // any SVG colour
	Dashed bool
	Points []Point
}

// Panel is one plot with its own y axis; a chart's panels share the x axis.
type Panel struct {
	Title  string
	YLabel string
	Series []Series
}

// Marker is a labelled vertical line across every panel (e.g. "load stops").
type Marker struct {
	X     float64
	Label string
}

// Chart is a stack of panels drawn as a standalone SVG document, written by hand so the bench
// needs no plotting dependency.
type Chart struct {
	Title   string
	XLabel  string
	Panels  []Panel
	Markers []Marker
}

const (
	chartWidth   = 1040
	panelHeight  = 240
	marginLeft   = 80
	marginRight  = 250 // legend
	marginTop    = 56
	panelGap     = 64
	marginBottom = 50
)

// WriteSVG writes the chart as a well-formed SVG 1.1 document.
func (c *Chart) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	height := marginTop + len(c.Panels)*(panelHeight+panelGap) - panelGap + marginBottom
	plotW := float64(chartWidth - marginLeft - marginRight)

	xmin, xmax := c.xRange()
	xTicks, xmin, xmax := niceTicks(xmin, xmax, 10)
	sx := func(x float64) float64 { return marginLeft + (x-xmin)/(xmax-xmin)*plotW }

	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(bw, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", chartWidth, height)
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", marginLeft, esc(c.Title))

	for pi, p := range c.Panels {
		top := float64(marginTop + pi*(panelHeight+panelGap))
		bottom := top + panelHeight
		ymax := 0.0
		for _, s := range p.Series {
			for _, pt := range s.Points {
				if !math.IsNaN(pt.Y) && !math.IsInf(pt.Y, 0) {
					ymax = max(ymax, pt.Y)
				}
			}
		}
		yTicks, _, ymax := niceTicks(0, ymax, 5)
		sy := func(y float64) float64 { return bottom - y/ymax*panelHeight }

		fmt.Fprintf(bw, `<text x="%d" y="%s" font-size="13" font-weight="bold">%s</text>`+"\n", marginLeft, num(top-10), esc(p.Title))
		// Grid and axes.
		for _, y := range yTicks {
			fmt.Fprintf(bw, `<line x1="%d" y1="%s" x2="%s" y2="%s" stroke="#e5e5e5"/>`+"\n", marginLeft, num(sy(y)), num(marginLeft+plotW), num(sy(y)))
			fmt.Fprintf(bw, `<text x="%d" y="%s" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", marginLeft-6, num(sy(y)), esc(tickLabel(y)))
		}
		for _, x := range xTicks {
			fmt.Fprintf(bw, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#f0f0f0"/>`+"\n", num(sx(x)), num(top), num(sx(x)), num(bottom))
			fmt.Fprintf(bw, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", num(sx(x)), num(bottom+16), esc(tickLabel(x)))
		}
		fmt.Fprintf(bw, `<rect x="%d" y="%s" width="%s" height="%d" fill="none" stroke="#888"/>`+"\n", marginLeft, num(top), num(plotW), panelHeight)
		fmt.Fprintf(bw, `<text transform="translate(18 %s) rotate(-90)" text-anchor="middle">%s</text>`+"\n", num(top+panelHeight/2), esc(p.YLabel))
		if pi == len(c.Panels)-1 {
			fmt.Fprintf(bw, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", num(marginLeft+plotW/2), num(bottom+36), esc(c.XLabel))
		}
		for _, m := range c.Markers {
			if m.X < xmin || m.X > xmax {
				continue
			}
			fmt.Fprintf(bw, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#999" stroke-dasharray="3 3"/>`+"\n", num(sx(m.X)), num(top), num(sx(m.X)), num(bottom))
			fmt.Fprintf(bw, `<text x="%s" y="%s" fill="#666" font-size="11">%s</text>`+"\n", num(sx(m.X)+4), num(top+12), esc(m.Label))
		}
		// Lines, then the legend.
		for si, s := range p.Series {
			if d := pathData(s.Points, sx, sy); d != "" {
				dash := ""
				if s.Dashed {
					dash = ` stroke-dasharray="6 4"`
				}
				fmt.Fprintf(bw, `<path d="%s" fill="none" stroke="%s" stroke-width="1.6"%s/>`+"\n", d, esc(s.Color), dash)
			}
			ly := top + 14 + float64(si)*18
			lx := marginLeft + plotW + 14
			fmt.Fprintf(bw, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="3"/>`+"\n", num(lx), num(ly), num(lx+18), num(ly), esc(s.Color))
			fmt.Fprintf(bw, `<text x="%s" y="%s" dominant-baseline="middle">%s</text>`+"\n", num(lx+24), num(ly), esc(s.Name))
		}
	}
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}

func (c *Chart) xRange() (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range c.Panels {
		for _, s := range p.Series {
			for _, pt := range s.Points {
				lo, hi = min(lo, pt.X), max(hi, pt.X)
			}
		}
	}
	for _, m := range c.Markers {
		lo, hi = min(lo, m.X), max(hi, m.X)
	}
	if math.IsInf(lo, 0) {
		return 0, 1
	}
	return lo, hi
}

// pathData draws points as one path, lifting the pen over NaN gaps.
func pathData(points []Point, sx, sy func(float64) float64) string {
	var b strings.Builder
	pen := false
	for _, pt := range points {
		if math.IsNaN(pt.Y) || math.IsInf(pt.Y, 0) || math.IsNaN(pt.X) {
			pen = false
			continue
		}
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(cmd + num(sx(pt.X)) + " " + num(sy(pt.Y)))
		pen = true
	}
	return b.String()
}

// niceTicks picks about n round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi], and
// the axis range they span.
func niceTicks(lo, hi float64, n int) (ticks []float64, axisLo, axisHi float64) {
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / float64(n))
	axisLo = math.Floor(lo/step) * step
	axisHi = math.Ceil(hi/step) * step
	for v := axisLo; v <= axisHi+step/2; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return ticks, axisLo, axisHi
}

func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func tickLabel(v float64) string {
	if math.Abs(v) >= 10000 && math.Mod(v, 1000) == 0 {
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
