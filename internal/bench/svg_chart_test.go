package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// elements parses an SVG document completely, failing on any XML error, and counts elements
// by name.
func elements(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	counts := make(map[string]int)
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = true
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				require.Equal(t, "svg", tok.Name.Local)
				require.Equal(t, "http://www.w3.org/2000/svg", tok.Name.Space)
			}
			depth++
			counts[tok.Name.Local]++
		case xml.EndElement:
			depth--
		}
	}
	require.Zero(t, depth, "every element closed")
	return counts
}

func TestChartWriteSVGIsWellFormed(t *testing.T) {
	t.Parallel()

	var pts []Point
	for i := range 60 {
		pts = append(pts, Point{X: float64(i), Y: float64(i * 50)})
	}
	gappy := []Point{{0, 1}, {1, math.NaN()}, {2, 3}, {3, 4}, {4, math.Inf(1)}, {5, 2}}
	c := &Chart{
		Title:  `orders <3000/s> & "friends"`,
		XLabel: "seconds since start",
		Panels: []Panel{
			{Title: "throughput", YLabel: "per second", Series: []Series{
				{Name: "offered", Color: "#1f77b4", Dashed: true, Points: pts},
				{Name: "dispatched <&>", Color: "#2ca02c", Points: gappy},
			}},
			{Title: "p99", YLabel: "ms", Series: []Series{{Name: "empty", Color: "red"}}},
		},
		Markers: []Marker{{X: 30, Label: "load stops"}},
	}
	var buf bytes.Buffer
	require.NoError(t, c.WriteSVG(&buf))

	counts := elements(t, buf.Bytes())
	// Two drawn series (the empty one draws no path); the NaN and Inf gaps split into
	// separate subpaths, not separate elements.
	require.Equal(t, 2, counts["path"])
	require.Equal(t, 2, counts["rect"]-1, "a frame per panel besides the background")
	require.Contains(t, buf.String(), "orders &lt;3000/s&gt; &amp;")
	require.Equal(t, 3, strings.Count(pathOf(t, buf.String(), "#2ca02c"), "M"), "pen lifted at NaN and Inf")
}

func pathOf(t *testing.T, svg, color string) string {
	t.Helper()
	for _, line := range strings.Split(svg, "\n") {
		if strings.HasPrefix(line, "<path") && strings.Contains(line, `stroke="`+color+`"`) {
			return line
		}
	}
	t.Fatalf("no path in %s", color)
	return ""
}

func TestChartWithoutDataIsWellFormed(t *testing.T) {
	t.Parallel()

	var buf bytes.Buffer
	require.NoError(t, (&Chart{Title: "nothing"}).WriteSVG(&buf))
	elements(t, buf.Bytes())

	buf.Reset()
	require.NoError(t, (&Chart{Panels: []Panel{{Title: "flat", Series: []Series{{Name: "zero", Color: "black", Points: []Point{{0, 0}, {1, 0}}}}}}}).WriteSVG(&buf))
	require.NotContains(t, buf.String(), "NaN")
	elements(t, buf.Bytes())
}

func TestNiceTicks(t *testing.T) {
	t.Parallel()

	tests := []struct {
		lo, hi      float64
		n           int
		want        []float64
		wantLo, hi2 float64
	}{
		{0, 3000, 5, []float64{0, 1000, 2000, 3000}, 0, 3000},
		{0, 3100, 5, []float64{0, 1000, 2000, 3000, 4000}, 0, 4000},
		{0, 0.17, 5, []float64{0, 0.05, 0.1, 0.15, 0.2}, 0, 0.2},
		{0, 0, 5, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}, 0, 1},
		{3, 71, 10, []float64{0, 10, 20, 30, 40, 50, 60, 70, 80}, 0, 80},
	}
	for _, tt := range tests {
		ticks, lo, hi := niceTicks(tt.lo, tt.hi, tt.n)
		require.InDeltaSlice(t, tt.want, ticks, 1e-9, "%v..%v", tt.lo, tt.hi)
		require.InDelta(t, tt.wantLo, lo, 1e-9)
		require.InDelta(t, tt.hi2, hi, 1e-9)
	}
}
