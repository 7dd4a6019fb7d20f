package sched

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// String summarises the explanation for people:
// "0/5000 nodes feasible: 4000 missing driver docker, 1000 memory exhausted",
// reasons by count descending, then by name.
func (e *Explanation) String() string {
	if e == nil {
		return ""
	}
	type reason struct {
		name  string
		count int
	}
	rs := make([]reason, 0, len(e.Reasons))
	for name, n := range e.Reasons {
		rs = append(rs, reason{name, n})
	}
	slices.SortFunc(rs, func(a, b reason) int {
		return cmp.Or(cmp.Compare(b.count, a.count), strings.Compare(a.name, b.name))
	})
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.NodesFeasible))
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(e.NodesEvaluated))
	b.WriteString(" nodes feasible")
	for i, r := range rs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(r.count))
		b.WriteByte(' ')
		b.WriteString(r.name)
	}
	return b.String()
}
