package truncate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"", 5, ""},
		{"short", 5, "short"},
		{"longer", 5, "long…"},
		{"ééééé", 5, "ééééé"},
		{"éééééé", 5, "éééé…"},
		{"x", 0, ""},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Runes(tt.s, tt.n), "%q to %d", tt.s, tt.n)
	}
}
