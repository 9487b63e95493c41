package onfleettest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha512"
	"embed"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier/onfleet"
)

// Secret is "Onfleet-webhook-secret-for-tests", hex-encoded as Onfleet shows secrets; Other is a
// second one, for rotations and forgeries.
const (
	Secret = "4f6e666c6565742d776562686f6f6b2d7365637265742d666f722d7465737473"
	Other  = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

//go:embed testdata/*.json
var fixtures embed.FS

// Sign computes Onfleet's signature of body (hex HMAC-SHA512 keyed with the hex-decoded secret)
// independently of the code under test.
func Sign(t testing.TB, secretHex string, body []byte) string {
	t.Helper()
	key, err := hex.DecodeString(secretHex)
	require.NoError(t, err)
	mac := hmac.New(sha512.New, key)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Fixture is a documented webhook body, by file name without .json (task_started…).
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fixtures.ReadFile("testdata/" + name + ".json")
	require.NoError(t, err)
	return b
}

// Derive changes values in a documented payload, never its shape. Each change is a path of
// object keys (array indexes as numbers in a string are not needed) and a value.
func Derive(t testing.TB, base []byte, changes map[string]any) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(base))
	dec.UseNumber()
	var doc map[string]any
	require.NoError(t, dec.Decode(&doc))
	for path, v := range changes {
		keys := strings.Split(path, ".")
		obj := doc
		for _, k := range keys[:len(keys)-1] {
			next, ok := obj[k].(map[string]any)
			require.True(t, ok, "derive: %s is not an object in the fixture", path)
			obj = next
		}
		_, exists := obj[keys[len(keys)-1]]
		require.True(t, exists, "derive: %s is not in the fixture: shapes stay as documented", path)
		obj[keys[len(keys)-1]] = v
	}
	out, err := json.Marshal(doc)
	require.NoError(t, err)
	return out
}

// WaybillMetadata is task metadata as Waybill's dispatch stores it.
func WaybillMetadata(externalID string, orderID int64) []any {
	return []any{
		map[string]any{"name": onfleet.MetaExternalID, "type": "string", "value": externalID},
		map[string]any{"name": onfleet.MetaOrderID, "type": "number", "value": orderID},
	}
}

// Fixtures are every documented webhook body, for fuzz seeds.
func Fixtures(t testing.TB) [][]byte {
	t.Helper()
	entries, err := fixtures.ReadDir("testdata")
	require.NoError(t, err)
	var all [][]byte
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			all = append(all, Fixture(t, name))
		}
	}
	return all
}
