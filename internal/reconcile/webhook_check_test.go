package reconcile

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/dbsqlc"
)

func TestWebhookURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                       "",
		"https://w.example.com":                  "https://w.example.com/webhooks/onfleet",
		"https://w.example.com/":                 "https://w.example.com/webhooks/onfleet",
		"https://w.example.com/waybill":          "https://w.example.com/waybill/webhooks/onfleet",
		"https://w.example.com/webhooks/onfleet": "https://w.example.com/webhooks/onfleet",
	} {
		got, err := WebhookURL(in, "onfleet")
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := WebhookURL("ftp://x", "onfleet")
	require.Error(t, err)
}

// check, register, check again against the sandbox's webhook API, with an endpoint that answers
// Onfleet's ?check= as Waybill's does.
func TestCheckAndRegisterOnfleetWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, nil)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.URL.Query().Get("check")))
	}))
	t.Cleanup(echo.Close)
	want := echo.URL + "/webhooks/onfleet"

	rep, err := CheckOnfleetWebhooks(ctx, b.client, want)
	require.NoError(t, err)
	missing, disabled, elsewhere := rep.Problems()
	require.Len(t, missing, len(OnfleetTriggers))
	require.Empty(t, disabled)
	require.Empty(t, elsewhere)
	require.False(t, rep.OK())

	// Someone else's webhook for a trigger, and an old Waybill URL for another.
	_, err = b.client.CreateWebhook(ctx, "zapier", echo.URL+"/zap", 3)
	require.NoError(t, err)
	_, err = b.client.CreateWebhook(ctx, "old waybill", echo.URL+"/old/webhooks/onfleet", 4)
	require.NoError(t, err)
	rep, err = CheckOnfleetWebhooks(ctx, b.client, want)
	require.NoError(t, err)
	_, _, elsewhere = rep.Problems()
	require.Equal(t, []string{"taskFailed"}, elsewhere)

	rep, created, err := RegisterOnfleetWebhooks(ctx, b.client, want)
	require.NoError(t, err)
	require.Len(t, created, len(OnfleetTriggers), "one webhook per trigger")
	require.True(t, rep.OK(), "%+v", rep)
	require.Len(t, rep.Ours, len(OnfleetTriggers))

	// Registering again creates nothing.
	_, created, err = RegisterOnfleetWebhooks(ctx, b.client, want)
	require.NoError(t, err)
	require.Empty(t, created)

	// The carrier disables one (as after 300 failed deliveries): reported, and replaced.
	var completed onfleet.Webhook
	for _, h := range rep.Ours {
		if h.Trigger == 3 {
			completed = h
		}
	}
	req, _ := http.NewRequest(http.MethodPut, b.sandboxURL+"/webhooks/"+completed.ID, stringsReader(`{"isEnabled":false}`))
	req.SetBasicAuth("k", "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	rep, err = CheckOnfleetWebhooks(ctx, b.client, want)
	require.NoError(t, err)
	_, disabled, _ = rep.Problems()
	require.Equal(t, []string{"taskCompleted"}, disabled)
	require.NoError(t, SaveWebhookReport(ctx, b.pool, onfleet.Name, rep, nil, time.Now()))
	saved, err := dbsqlc.New().CarrierWebhookCheckList(ctx, b.pool)
	require.NoError(t, err)
	require.Len(t, saved, 1)
	require.Equal(t, []string{"taskCompleted"}, saved[0].Disabled)
	require.Equal(t, want, saved[0].Url)

	rep, created, err = RegisterOnfleetWebhooks(ctx, b.client, want)
	require.NoError(t, err)
	require.Len(t, created, 1)
	require.True(t, rep.OK())
	hooks, err := b.client.ListWebhooks(ctx)
	require.NoError(t, err)
	for _, h := range hooks {
		require.NotEqual(t, completed.ID, h.ID, "the disabled webhook was replaced")
	}
}
