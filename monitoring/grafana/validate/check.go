package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// The SDK picks a panel's options/fieldConfig.custom types and a target's query type from
// a registry: without it, every panel type would pass as "unknown, keep as a map".
func init() { plugins.RegisterDefaultPlugins() }

// gridWidth is the width of Grafana's dashboard grid.
const gridWidth = 24

// Grafana's own variables that may appear in a query besides the dashboard's.
var builtinVariables = []string{
	"__rate_interval", "__rate_interval_ms", "__interval", "__interval_ms",
	"__range", "__range_s", "__range_ms",
}

// A variable reference in a query: $name, ${name}, ${name:format} or [[name]].
var variableRef = regexp.MustCompile(`\$(\w+)|\$\{(\w+)(?::[\w-]+)?\}|\[\[(\w+)\]\]`)

// Query is one target of one panel.
type Query struct {
	PanelID uint32
	Title   string
	RefID   string
	Expr    string
}

// Result is what checkDashboard found: problems (none means valid) and every query.
type Result struct {
	Problems []string
	Queries  []Query
}

func (r *Result) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// schemaProblems lists the SDK's errors one per line ("panels[3].options: unexpected field 'x'").
func (r *Result) schemaProblems(stage string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		r.problem("%s: %s", stage, line)
	}
}

// panelRef is a panel or row with its raw JSON and the grid it is laid out in: the
// dashboard's top level (group 0) or the inside of collapsed row n (group n+1).
type panelRef struct {
	path  string
	id    *uint32
	title string
	grid  *dashboard.GridPos
	group int
	panel *dashboard.Panel // nil for a row
	raw   json.RawMessage
}

func (p panelRef) name() string {
	if p.title != "" {
		return fmt.Sprintf("%s %q", p.path, p.title)
	}
	return p.path
}

// checkDashboard validates one dashboard JSON document against the Grafana Foundation SDK's
// schema (strict unmarshal + Validate) and this project's rules for a provisioned dashboard.
func checkDashboard(raw []byte) Result {
	var r Result
	var d dashboard.Dashboard
	if err := strictErrors(d.UnmarshalJSONStrict(raw)); err != nil {
		if !errors.As(err, new(cog.BuildErrors)) {
			r.problem("not a dashboard: %v", err) // not JSON, or a panels array that is not one
			return r
		}
		r.schemaProblems("schema", err)
	}
	if err := strictErrors(d.Validate()); err != nil {
		r.schemaProblems("schema validation", err)
	}

	var rawDoc struct {
		Panels []json.RawMessage `json:"panels"`
	}
	_ = json.Unmarshal(raw, &rawDoc) // the SDK has read it: it is JSON with a panels array

	datasourceVars := checkVariables(&r, d.Templating.List)
	known := slices.Clone(builtinVariables)
	for _, v := range d.Templating.List {
		known = append(known, v.Name)
	}

	refs := flatten(&r, rawDoc.Panels)
	checkIDs(&r, refs)
	checkGrid(&r, refs)
	for _, p := range refs {
		if p.panel == nil {
			continue
		}
		// Dashboard.Validate could not see the panels (see flatten).
		if err := strictErrors(p.panel.Validate()); err != nil {
			r.schemaProblems("schema validation: "+p.path, err)
		}
		checkPanel(&r, p, datasourceVars, known)
	}
	return r
}

// strictErrors turns the SDK's empty error list into nil: its strict readers return their
// cog.BuildErrors slice as an error even when it is empty.
func strictErrors(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// checkVariables checks that query variables read from a datasource variable and returns
// the names of the datasource variables (the only datasource a panel may use).
func checkVariables(r *Result, vars []dashboard.VariableModel) []string {
	var dsVars []string
	seen := map[string]bool{}
	for _, v := range vars {
		if seen[v.Name] {
			r.problem("templating: variable %q defined twice", v.Name)
		}
		seen[v.Name] = true
		if v.Type == dashboard.VariableTypeDatasource {
			dsVars = append(dsVars, v.Name)
		}
	}
	for _, v := range vars {
		if v.Type != dashboard.VariableTypeQuery {
			continue
		}
		if v.Query == nil || (v.Query.String == nil && v.Query.Map == nil) {
			r.problem("templating: variable %q has no query", v.Name)
		}
		if msg := datasourceProblem(v.Datasource, dsVars); msg != "" {
			r.problem("templating: variable %q: %s", v.Name, msg)
		}
	}
	return dsVars
}

// datasourceProblem says what is wrong with a datasource reference ("" when it is the
// dashboard's datasource variable): a fixed uid would break on any other Grafana.
func datasourceProblem(ref *dashboard.DataSourceRef, dsVars []string) string {
	if ref == nil {
		return "no datasource (want the datasource variable)"
	}
	uid, typ := deref(ref.Uid), deref(ref.Type)
	for _, name := range dsVars {
		if uid == "${"+name+"}" || uid == "$"+name {
			if typ != "prometheus" {
				return fmt.Sprintf("datasource type %q (want \"prometheus\")", typ)
			}
			return ""
		}
	}
	if len(dsVars) == 0 {
		return fmt.Sprintf("datasource uid %q, and the dashboard has no datasource variable", uid)
	}
	return fmt.Sprintf("datasource uid %q is not the datasource variable ${%s}", uid, dsVars[0])
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// flatten reads the rows and panels (with the panels of collapsed rows) one by one. The
// SDK's strict Dashboard reader reports their errors but keeps none of them: its Panel
// reader returns an empty error list as a non-nil error, so PanelOrRowPanel gives up before
// storing the panel (v0.0.22). Reading each again here gives the values; errors are not
// reported twice.
func flatten(r *Result, raws []json.RawMessage) []panelRef {
	var refs []panelRef
	for i, raw := range raws {
		path := fmt.Sprintf("panels[%d]", i)
		var head struct {
			Type   string            `json:"type"`
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			r.problem("%s: %v", path, err)
			continue
		}
		if head.Type != "row" {
			refs = append(refs, readPanel(path, raw, 0))
			continue
		}
		var row dashboard.RowPanel
		_ = row.UnmarshalJSONStrict(raw) // its errors are in the dashboard's
		if err := strictErrors(row.Validate()); err != nil {
			r.schemaProblems("schema validation: "+path, err)
		}
		refs = append(refs, panelRef{path, &row.Id, deref(row.Title), row.GridPos, 0, nil, raw})
		for j, child := range head.Panels {
			refs = append(refs, readPanel(fmt.Sprintf("%s.panels[%d]", path, j), child, i+1))
		}
	}
	return refs
}

// readPanel reads a panel and its targets (the SDK drops Prometheus targets the same way).
func readPanel(path string, raw json.RawMessage, group int) panelRef {
	p := &dashboard.Panel{}
	_ = p.UnmarshalJSONStrict(raw) // its errors are in the dashboard's
	var rawTargets struct {
		Targets []json.RawMessage `json:"targets"`
	}
	_ = json.Unmarshal(raw, &rawTargets) // read above
	p.Targets = nil
	for _, t := range rawTargets.Targets {
		// The SDK's strict query reader returns nil for every query (same empty-list error):
		// read a query the registry would give to Prometheus as one, other queries loosely.
		q, err := cog.UnmarshalDataquery(t, "")
		if _, isProm := q.(*prometheus.Dataquery); isProm || err != nil {
			pq := &prometheus.Dataquery{}
			_ = pq.UnmarshalJSONStrict(t) // its errors are in the dashboard's
			q = pq
		}
		p.Targets = append(p.Targets, q)
	}
	return panelRef{path, p.Id, deref(p.Title), p.GridPos, group, p, raw}
}

func checkIDs(r *Result, refs []panelRef) {
	byID := map[uint32]panelRef{}
	for _, p := range refs {
		if p.id == nil {
			r.problem("%s: no id", p.name())
			continue
		}
		if first, dup := byID[*p.id]; dup {
			r.problem("%s: duplicate panel id %d (also %s)", p.name(), *p.id, first.name())
			continue
		}
		byID[*p.id] = p
	}
}

// checkGrid rejects panels without a position, wider than the grid, or overlapping another
// panel of the same grid (Grafana would push one of them down, silently reordering).
func checkGrid(r *Result, refs []panelRef) {
	for i, a := range refs {
		if a.grid == nil {
			r.problem("%s: no gridPos", a.name())
			continue
		}
		if a.grid.X+a.grid.W > gridWidth {
			r.problem("%s: gridPos x %d + w %d is wider than the grid (%d)", a.name(), a.grid.X, a.grid.W, gridWidth)
		}
		for _, b := range refs[:i] {
			if b.grid == nil || b.group != a.group {
				continue
			}
			if a.grid.X < b.grid.X+b.grid.W && b.grid.X < a.grid.X+a.grid.W &&
				a.grid.Y < b.grid.Y+b.grid.H && b.grid.Y < a.grid.Y+a.grid.H {
				r.problem("%s: gridPos %s overlaps %s at %s", a.name(), gridString(a.grid), b.name(), gridString(b.grid))
			}
		}
	}
}

func gridString(g *dashboard.GridPos) string {
	return fmt.Sprintf("{x:%d y:%d w:%d h:%d}", g.X, g.Y, g.W, g.H)
}

func checkPanel(r *Result, p panelRef, dsVars, knownVars []string) {
	panel := p.panel
	name := p.name()
	if _, ok := cog.ConfigForPanelcfgVariant(panel.Type); !ok {
		// The SDK only checks options and fieldConfig.custom of the types it knows.
		r.problem("%s: unknown panel type %q", name, panel.Type)
	}
	if p.title == "" {
		r.problem("%s: no title", name)
	}
	if deref(panel.Description) == "" {
		r.problem("%s: no description (say what the panel answers)", name)
	}
	// The SDK's strict Panel reads fieldConfig (but for .defaults.custom) with a loose
	// json.Unmarshal: a misspelt "unit" would pass. Read it again with the strict reader.
	var rawPanel struct {
		FieldConfig json.RawMessage `json:"fieldConfig"`
	}
	_ = json.Unmarshal(p.raw, &rawPanel) // the SDK has already read this JSON
	if rawPanel.FieldConfig == nil {
		r.problem("%s: no fieldConfig (want at least defaults.unit)", name)
	} else {
		var fc dashboard.FieldConfigSource
		if err := strictErrors(fc.UnmarshalJSONStrict(rawPanel.FieldConfig)); err != nil {
			r.schemaProblems(name+": fieldConfig", err)
		} else if deref(fc.Defaults.Unit) == "" {
			r.problem("%s: no fieldConfig.defaults.unit", name)
		}
	}
	if msg := datasourceProblem(panel.Datasource, dsVars); msg != "" {
		r.problem("%s: %s", name, msg)
	}
	if len(panel.Targets) == 0 {
		r.problem("%s: no targets", name)
	}
	refIDs := map[string]bool{}
	for i, t := range panel.Targets {
		tname := fmt.Sprintf("%s targets[%d]", name, i)
		q, ok := t.(*prometheus.Dataquery)
		if !ok {
			r.problem("%s: not a Prometheus query (%s)", tname, describeTarget(t))
			continue
		}
		refID := deref(q.RefId)
		switch {
		case refID == "":
			r.problem("%s: no refId", tname)
		case refIDs[refID]:
			r.problem("%s: duplicate refId %q", tname, refID)
		}
		refIDs[refID] = true
		if msg := datasourceProblem(q.Datasource, dsVars); msg != "" {
			r.problem("%s: %s", tname, msg)
		}
		if strings.TrimSpace(q.Expr) == "" {
			r.problem("%s: no expr", tname)
			continue
		}
		for _, m := range variableRef.FindAllStringSubmatch(q.Expr, -1) {
			v := m[1] + m[2] + m[3]
			if !slices.Contains(knownVars, v) {
				r.problem("%s: expr uses $%s, which is neither a dashboard variable nor a Grafana one", tname, v)
			}
		}
		id := uint32(0)
		if panel.Id != nil {
			id = *panel.Id
		}
		r.Queries = append(r.Queries, Query{PanelID: id, Title: p.title, RefID: refID, Expr: q.Expr})
	}
}

func describeTarget(t variants.Dataquery) string {
	if u, ok := t.(variants.UnknownDataquery); ok {
		if ds, ok := u["datasource"].(map[string]any); ok {
			return fmt.Sprintf("datasource type %v", ds["type"])
		}
		return "no datasource type"
	}
	return "type " + t.DataqueryType()
}

// substitute replaces the dashboard variables named in values ($x, ${x}, ${x:fmt}, [[x]]),
// as Grafana would before sending the query; others are left as they are.
func substitute(expr string, values map[string]string) string {
	return variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		if v, ok := values[m[1]+m[2]+m[3]]; ok {
			return v
		}
		return ref
	})
}
