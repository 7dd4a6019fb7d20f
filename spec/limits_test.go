package spec

import (
	"strings"
	"testing"
)

// The documented limits on names and counts (README, "Input limits"):
// each name is 1 to 128 of letters, digits, '_', '.' and '-', not
// starting with '-'; a group's count is 0 to MaxCount. The boundary
// values pass, one past them fails naming the field.
func TestNameAndCountLimits(t *testing.T) {
	long := strings.Repeat("n", maxNameLen)
	tests := []struct {
		name string
		edit func(j *Job)
		want string // "" when valid; else a part of the error
	}{
		{"longest job ID", func(j *Job) { j.ID = long }, ""},
		{"job ID one too long", func(j *Job) { j.ID = long + "n" }, "job ID"},
		{"job ID with a leading dash", func(j *Job) { j.ID = "-web" }, `job ID "-web" must not start with '-'`},
		{"job ID with dots, underscores, inner dashes", func(j *Job) { j.ID = "a.b_c-d" }, ""},
		{"job ID with a space", func(j *Job) { j.ID = "my job" }, `job ID "my job" contains ' '`},
		{"job ID with a slash", func(j *Job) { j.ID = "a/b" }, `contains '/'`},
		{"job ID with a NUL", func(j *Job) { j.ID = "a\x00b" }, `contains '\x00'`},
		{"job ID not ASCII", func(j *Job) { j.ID = "jöb" }, `contains 'ö'`},
		{"group with a leading dash", func(j *Job) { j.Groups[0].Name = "-web" }, "Invalid group name"},
		{"task with a leading dash", func(j *Job) { j.Groups[0].Tasks[0].Name = "-hello" }, "Invalid task name"},
		{"datacenter with a leading dash", func(j *Job) { j.Datacenters = []string{"-dc1"} }, "Invalid datacenter"},
		{"count at the limit", func(j *Job) { j.Groups[0].Count = MaxCount }, ""},
		{"count one over the limit", func(j *Job) { j.Groups[0].Count = MaxCount + 1 }, "count 100001 is over the limit of 100000"},
		{"count of ten million", func(j *Job) { j.Groups[0].Count = 10_000_000 }, "Invalid count"},
		{"negative count", func(j *Job) { j.Groups[0].Count = -1 }, "count must be 0 or more"},
		{"count zero", func(j *Job) { j.Groups[0].Count = 0 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := decodeJSON(t, validJSON)
			tt.edit(j)
			err := Validate(j)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
