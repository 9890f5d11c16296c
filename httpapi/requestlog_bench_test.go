package httpapi

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkRequestInstrumentation is what every request pays for the request
// id, the metrics and the request log decision, per RequestLog mode (logs go
// to a JSON handler on io.Discard at info level, as kvnode's default).
func BenchmarkRequestInstrumentation(b *testing.B) {
	for _, mode := range []RequestLogMode{RequestLogErrors, RequestLogAll} {
		b.Run(string(mode), func(b *testing.B) {
			a := &api{cfg: Config{RequestLog: mode}, log: slog.New(slog.NewJSONHandler(io.Discard, nil)).With("component", "httpapi"),
				ids: newRequestIDs()}
			var err error
			if a.metrics, err = newHTTPMetrics(Config{}.withDefaults().Metrics); err != nil {
				b.Fatal(err)
			}
			rm := a.metrics.forRoute("/kv/items/{key}")
			r := httptest.NewRequest("GET", "/kv/items/k", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				id := a.requestID(w, r)
				a.finishRequest(rm, r, 200, start, "default", id)
			}
		})
	}
}
