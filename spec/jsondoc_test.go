package spec

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"testing"
)

// The examples of docs/job-json.md stay true: the first is canonical (it
// is what Canonicalize makes of itself, and valid), the second is the
// smallest valid job.
func TestJSONDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/job-json.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) != 2 {
		t.Fatalf("%d JSON examples in docs/job-json.md, want 2", len(blocks))
	}
	for i, b := range blocks {
		var j Job
		dec := json.NewDecoder(bytes.NewReader(b[1]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
		before, _ := json.Marshal(&j)
		Canonicalize(&j)
		if err := Validate(&j); err != nil {
			t.Errorf("example %d is not valid: %v", i, err)
		}
		after, _ := json.Marshal(&j)
		if i == 0 && !bytes.Equal(before, after) {
			t.Errorf("example 0 is not canonical:\n%s\n%s", before, after)
		}
	}
	var fromHCL, fromDoc Job
	if err := json.Unmarshal(blocks[1][1], &fromDoc); err != nil {
		t.Fatal(err)
	}
	Canonicalize(&fromDoc)
	hello := parseFile(t, "testdata/hello.hcl")
	fromHCL = *hello
	fromHCL.Groups[0].Tasks[0].Services = nil
	if !reflect.DeepEqual(&fromHCL, &fromDoc) {
		a, _ := json.Marshal(&fromHCL)
		b, _ := json.Marshal(&fromDoc)
		t.Errorf("the smallest job differs from testdata/hello.hcl without its service:\n%s\n%s", a, b)
	}
}
