package main

import (
	"fmt"
	"math"
	"sort"
)

// Sample is one measurement in seconds (or any unit). Censored means the
// event did not happen before the scenario's bound: the true value is
// larger than Value, and it is printed as ">Value".
type Sample struct {
	Value    float64
	Censored bool
}

// quantile returns the nearest-rank p-quantile (0 < p <= 1) of samples, so
// the result is always one of the measured samples. Censored samples sort
// after uncensored ones of the same value (their true value is larger). It
// returns false for an empty slice.
func quantile(samples []Sample, p float64) (Sample, bool) {
	if len(samples) == 0 {
		return Sample{}, false
	}
	sorted := append([]Sample(nil), samples...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Value != sorted[j].Value {
			return sorted[i].Value < sorted[j].Value
		}
		return !sorted[i].Censored && sorted[j].Censored
	})
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank], true
}

func median(samples []Sample) (Sample, bool) { return quantile(samples, 0.5) }
func p90(samples []Sample) (Sample, bool)    { return quantile(samples, 0.9) }

// uncensored wraps plain values.
func uncensored(values ...float64) []Sample {
	out := make([]Sample, len(values))
	for i, v := range values {
		out[i] = Sample{Value: v}
	}
	return out
}

// naCell is what a numeric column shows when there is nothing to show.
const naCell = "n/a"

// formatSample prints a sample with the given decimals: "1.23" or ">30.00".
func formatSample(s Sample, ok bool, decimals int) string {
	if !ok || math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
		return naCell
	}
	v := fmt.Sprintf("%.*f", decimals, s.Value)
	if s.Censored {
		return ">" + v
	}
	return v
}

// formatRatio prints num/den as "3.2": both censored or den zero gives
// n/a; a censored numerator gives ">x" (at least that much worse), a
// censored denominator "<x".
func formatRatio(num, den Sample, ok bool) string {
	if !ok || den.Value <= 0 || (num.Censored && den.Censored) {
		return naCell
	}
	r := fmt.Sprintf("%.2f", num.Value/den.Value)
	switch {
	case num.Censored:
		return ">" + r
	case den.Censored:
		return "<" + r
	}
	return r
}
