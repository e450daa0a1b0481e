package api_test

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"kaiwa/server/auth"
	"kaiwa/shared/proto"
)

// TestLoginLongUsernamesLeaveNoHeap sends 1000 failed logins with 65 KB usernames, which cannot
// exist, and checks that the server keeps none of them: the heap in use after a GC grows by
// far less than the names' 65 MB. Not parallel: it reads the heap of the whole test process.
func TestLoginLongUsernamesLeaveNoHeap(t *testing.T) {
	// A per-address budget that never runs out, as for an attacker spread over many addresses.
	ts := newAPIServer(t, nil, auth.ThrottleConfig{PerIP: rate.Every(time.Millisecond), PerIPBurst: 100_000})
	const logins, workers = 1000, 4
	heapInuse := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heapInuse()
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for w := range workers {
		wg.Go(func() {
			for i := w; i < logins; i += workers {
				name := strconv.Itoa(i) + strings.Repeat("a", 65_000) // unique, and far too long
				resp := do(t, ts.URL, request{method: "POST", path: "/api/auth/login", body: `{"username":"` + name + `","password":"wrong horse"}`})
				if resp.StatusCode != http.StatusUnauthorized {
					wantError(t, resp, http.StatusUnauthorized, proto.CodeInvalidCredentials)
				}
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	after := heapInuse()
	t.Logf("heap in use after GC: %.1f MB before, %.1f MB after %d failed logins with 65 KB usernames (statuses %v)",
		float64(before)/1e6, float64(after)/1e6, logins, statuses)
	if after > before && after-before > 16<<20 {
		t.Errorf("the heap grew by %.1f MB: the server keeps what failed logins sent", float64(after-before)/1e6)
	}
}
