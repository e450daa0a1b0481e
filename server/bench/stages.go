package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// stageNames are the stages of kaiwa_fanout_stage_seconds in the order a message goes through
// them: its frame read and decoded, the committer's queue, the commit and its fsync, the
// fan-out to the members' outboxes, the writer's wake-up, the socket write.
var stageNames = []string{"decode", "queue", "commit", "fanout", "wake", "write"}

// stageCounts holds, by stage, the cumulative count of each bucket by its upper bound.
type stageCounts map[string]map[float64]float64

// scrapeStages reads the stage histograms from a Kaiwa server's /metrics.
func scrapeStages(ctx context.Context, base string) (stageCounts, error) {
	body, err := getMetrics(ctx, base)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return parseStages(bufio.NewScanner(body))
}

// getMetrics returns the body of a Kaiwa server's /metrics; the caller closes it.
func getMetrics(ctx context.Context, base string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("bench: /metrics: %s", resp.Status)
	}
	return resp.Body, nil
}

// parseStages reads lines like
// kaiwa_fanout_stage_seconds_bucket{stage="commit",le="0.001"} 42 from the text format.
func parseStages(sc *bufio.Scanner) (stageCounts, error) {
	const prefix = `kaiwa_fanout_stage_seconds_bucket{stage="`
	out := stageCounts{}
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		stage, rest, ok := strings.Cut(line, `",le="`)
		if !ok {
			continue
		}
		le, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses as infinity
		if err != nil {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		if out[stage] == nil {
			out[stage] = map[float64]float64{}
		}
		out[stage][bound] = n
	}
	return out, sc.Err()
}

// since returns the counts observed after before was taken.
func (s stageCounts) since(before stageCounts) stageCounts {
	out := stageCounts{}
	for stage, buckets := range s {
		out[stage] = map[float64]float64{}
		for le, n := range buckets {
			out[stage][le] = n - before[stage][le]
		}
	}
	return out
}

// add adds other's counts to s.
func (s stageCounts) add(other stageCounts) {
	for stage, buckets := range other {
		if s[stage] == nil {
			s[stage] = map[float64]float64{}
		}
		for le, n := range buckets {
			s[stage][le] += n
		}
	}
}

// count is how many observations a stage has.
func (s stageCounts) count(stage string) float64 {
	var top float64
	for _, n := range s[stage] {
		top = max(top, n)
	}
	return top
}

// quantile estimates the q quantile of a stage, interpolating within its bucket.
func (s stageCounts) quantile(stage string, q float64) time.Duration {
	buckets := s[stage]
	bounds := make([]float64, 0, len(buckets))
	for le := range buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	total := s.count(stage)
	if total == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, le := range bounds {
		n := buckets[le]
		if n >= rank {
			if le > 1e9 { // +Inf: the highest finite bound is all we know
				return time.Duration(lower * float64(time.Second))
			}
			frac := 0.0
			if n > below {
				frac = (rank - below) / (n - below)
			}
			return time.Duration((lower + (le-lower)*frac) * float64(time.Second))
		}
		lower, below = le, n
	}
	return time.Duration(lower * float64(time.Second))
}

// String gives each stage's p50 and p99 and how many times it was observed.
func (s stageCounts) String() string {
	var parts []string
	for _, stage := range stageNames {
		parts = append(parts, fmt.Sprintf("%s p50 %s p99 %s (%.0f)", stage, msPrecise(s.quantile(stage, .5)), msPrecise(s.quantile(stage, .99)), s.count(stage)))
	}
	return strings.Join(parts, "; ")
}

// figures adds each stage's p50 and p99, in milliseconds, to a row's figures.
func (s stageCounts) figures(into map[string]float64) map[string]float64 {
	for _, stage := range stageNames {
		into[stage+"_p50_ms"] = msf(s.quantile(stage, .5))
		into[stage+"_p99_ms"] = msf(s.quantile(stage, .99))
	}
	return into
}
