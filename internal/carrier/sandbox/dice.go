package sandbox

import "sync/atomic"

// dice is a lock-free, seeded random source: the n-th draw is a fixed function of the seed and
// n, so a run is reproducible for a given arrival order, and no goroutine waits on a mutex.
type dice struct {
	seed uint64
	n    atomic.Uint64
}

func newDice(seed int64) *dice { return &dice{seed: uint64(seed)} }

// uint64 is SplitMix64: the state seed+n·γ is distinct for every n and the mix is a bijection,
// so draws never repeat within 2^64 of them (task ids rely on that).
func (d *dice) uint64() uint64 {
	z := d.seed + d.n.Add(1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float64 is uniform in [0, 1).
func (d *dice) float64() float64 { return float64(d.uint64()>>11) / (1 << 53) }

// hit reports true with probability rate; rate 0 never, rate 1 always.
func (d *dice) hit(rate float64) bool { return rate > 0 && d.float64() < rate }

// idAlphabet is the alphabet of Onfleet ids, which contain '~' and '*' (e.g. kc8SS1tzuZ~jqjlebKGrUmpe).
const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~*"

// id returns a 24-character Onfleet-style id. Its first 11 characters encode one whole draw,
// so ids never collide.
func (d *dice) id() string {
	var b [24]byte
	for i := 0; i < 24; {
		x := d.uint64()
		for j := 0; j < 11 && i < 24; j++ {
			b[i] = idAlphabet[x&63]
			x >>= 6
			i++
		}
	}
	return string(b[:])
}

// hex returns n lowercase hex characters.
func (d *dice) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	var x uint64
	for i := range b {
		if i%16 == 0 {
			x = d.uint64()
		}
		b[i] = digits[x&15]
		x >>= 4
	}
	return string(b)
}
