package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The live check's substitutions (validate.sh).
var liveValues = map[string]string{"job": "financial-api", "instance": ".*", "model": ".*", "__rate_interval": "1m"}

func shippedDashboards(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in ../dashboards (%v)", err)
	}
	return files
}

func check(t *testing.T, file string) Result {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return checkDashboard(raw)
}

func TestShippedDashboardsAreValid(t *testing.T) {
	for _, file := range append(shippedDashboards(t), "testdata/good.json") {
		res := check(t, file)
		if len(res.Problems) > 0 {
			t.Errorf("%s:\n%s", file, strings.Join(res.Problems, "\n"))
		}
		if len(res.Queries) == 0 {
			t.Errorf("%s: no queries", file)
		}
	}
}

// Each fixture breaks testdata/good.json once; the validator must name what is broken.
func TestFixturesAreRejected(t *testing.T) {
	cases := map[string]string{
		"unknown-field.json":      `schema: panels[1].Panel: unexpected field 'unit'`,
		"misspelt-unit.json":      `panels[1] "Up": fieldConfig: defaults.FieldConfig: unexpected field 'units'`,
		"bad-panel-type.json":     `panels[1] "Up": unknown panel type "timeserie"`,
		"overlap.json":            `panels[2] "Scrape rate": gridPos {x:6 y:1 w:12 h:8} overlaps panels[1] "Up" at {x:0 y:1 w:12 h:8}`,
		"duplicate-id.json":       `panels[2] "Scrape rate": duplicate panel id 2 (also panels[1] "Up")`,
		"foreign-datasource.json": `panels[2] "Scrape rate" targets[0]: datasource uid "prometheus" is not the datasource variable ${datasource}`,
		"no-expr.json":            `panels[2] "Scrape rate" targets[0]: no expr`,
		"no-targets.json":         `panels[2] "Scrape rate": no targets`,
		"unknown-variable.json":   `panels[2] "Scrape rate" targets[0]: expr uses $jobs, which is neither a dashboard variable nor a Grafana one`,
		"zero-width.json":         `schema validation: panels[2]: gridPos.w: must be > 0`,
		"collapsed-overlap.json":  `panels[0].panels[1] "Scrape rate": gridPos {x:6 y:4 w:12 h:8} overlaps panels[0].panels[0] "Up" at {x:0 y:1 w:12 h:8}`,
	}
	for file, want := range cases {
		t.Run(file, func(t *testing.T) {
			res := check(t, filepath.Join("testdata", file))
			for _, p := range res.Problems {
				if p == want {
					return
				}
			}
			t.Errorf("want the problem\n  %s\ngot\n  %s", want, strings.Join(res.Problems, "\n  "))
		})
	}
}

func TestRunExitStatus(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"testdata/good.json", "testdata/overlap.json"}, false, false, nil, &out, &errs); code != 1 {
		t.Errorf("exit %d with an invalid file, want 1", code)
	}
	if !strings.Contains(errs.String(), "testdata/overlap.json: panels[2]") || !strings.Contains(errs.String(), "testdata/good.json: valid (2 queries)") {
		t.Errorf("stderr:\n%s", errs.String())
	}
}

func TestQueriesAreListedWithSubstitutions(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"testdata/good.json"}, true, false, liveValues, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	want := "Up\tup{job=\"financial-api\"}\nScrape rate\trate(scrape_samples_scraped{job=\"financial-api\"}[1m])\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestSubstitute(t *testing.T) {
	values := map[string]string{"job": "api", "__rate_interval": "1m"}
	got := substitute(`a{job="$job"} b{job="${job}"} c{job=~"${job:regex}"} d{job="[[job]]"} [$__rate_interval] $jobs $model`, values)
	want := `a{job="api"} b{job="api"} c{job=~"api"} d{job="api"} [1m] $jobs $model`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// promtool reads the -rules output: the shipped dashboards are valid PromQL, and a syntax
// error is reported with the file and panel it comes from.
func TestPromtoolChecksRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found (Debian: apt-get install prometheus)")
	}
	promtoolCheck := func(files ...string) (string, error) {
		var rules, errs bytes.Buffer
		if code := run(files, false, true, liveValues, &rules, &errs); code != 0 {
			t.Fatalf("exit %d: %s", code, errs.String())
		}
		path := filepath.Join(t.TempDir(), "rules.yml")
		if err := os.WriteFile(path, rules.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
		return string(out), err
	}
	if out, err := promtoolCheck(append(shippedDashboards(t), "testdata/good.json")...); err != nil {
		t.Errorf("promtool rejects the shipped dashboards: %v\n%s", err, out)
	}
	out, err := promtoolCheck("testdata/bad-promql.json")
	if err == nil || !strings.Contains(out, `bad-promql.json panel 3 Scrape rate`) {
		t.Errorf("promtool should reject bad-promql.json's panel 3: %v\n%s", err, out)
	}
}
