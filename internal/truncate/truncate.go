package truncate

import "unicode/utf8"

// Runes cuts s to at most n runes, the last of them an ellipsis when s was cut. A cut never
// splits a UTF-8 sequence, so the result is as valid as s.
func Runes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
