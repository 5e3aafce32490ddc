package flexbench

import (
	"math"
	"sort"
	"time"
)

// stats summarizes a sample of values (milliseconds, KiB, ...).
type stats struct {
	N                           int
	Min, Median, P90, Max, Mean float64
}

// Summarize computes the stats; percentiles are nearest-rank.
func Summarize(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return stats{N: len(s), Min: s[0], Max: s[len(s)-1], Mean: sum / float64(len(s)),
		Median: percentile(s, 50), P90: percentile(s, 90)}
}

func percentile(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
