package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/spf13/cobra"
)

// Every command that lists takes the same three options, as podman's do:
// --json, --format with a Go template over the same fields, and
// --no-legend for tables without their headings.
const outputHelp = `  --json             print JSON: the fields --format names, in snake_case
  --format TEMPLATE  print each with a Go template, e.g. '{{.Name}} {{.Subnet}}'
                     ("json": as --json)
  --no-legend        no table headings`

type outputFlags struct {
	json     bool
	format   string
	noLegend bool
}

func addOutputFlags(cmd *cobra.Command) *outputFlags {
	o := &outputFlags{}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	cmd.Flags().StringVar(&o.format, "format", "", "print with a Go template")
	cmd.Flags().BoolVar(&o.noLegend, "no-legend", false, "no table headings")
	return o
}

// check refuses options that exclude each other, before any call.
func (o *outputFlags) check(cmd *cobra.Command) (*template.Template, error) {
	if o.format == "json" {
		o.json, o.format = true, ""
	}
	if o.json && o.format != "" {
		return nil, usageError(cmd, "--json and --format exclude each other")
	}
	if o.format == "" {
		return nil, nil
	}
	tmpl, err := template.New("format").Funcs(template.FuncMap{
		"join": strings.Join,
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).Parse(o.format)
	if err != nil {
		return nil, usageError(cmd, "--format: %v", err)
	}
	return tmpl, nil
}

// writeEach prints items (a slice) with the template, one a line, as JSON,
// or with table.
func (o *outputFlags) writeEach(w io.Writer, tmpl *template.Template, items []any, table func(*tabwriter.Writer)) error {
	switch {
	case o.json:
		return writeJSON(w, items)
	case tmpl != nil:
		for _, item := range items {
			if err := tmpl.Execute(w, item); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			fmt.Fprintln(w)
		}
		return nil
	}
	tw := newTable(w)
	table(tw)
	return tw.Flush()
}

// writeOne prints one value with the template, as JSON, or with text.
func (o *outputFlags) writeOne(w io.Writer, tmpl *template.Template, value any, text func(io.Writer) error) error {
	switch {
	case o.json:
		return writeJSON(w, value)
	case tmpl != nil:
		if err := tmpl.Execute(w, value); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(w)
		return nil
	}
	return text(w)
}

// heading writes a table's heading row unless --no-legend.
func (o *outputFlags) heading(tw io.Writer, columns ...string) {
	if !o.noLegend {
		fmt.Fprintln(tw, strings.Join(columns, "\t"))
	}
}

// none says a table is empty, unless --no-legend (then it prints
// nothing, as an empty table of rows would).
func (o *outputFlags) none(w io.Writer, msg string) {
	if !o.noLegend {
		fmt.Fprintln(w, msg)
	}
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// anys is items as a []any, for writeEach.
func anys[T any](items []T) []any {
	out := make([]any, len(items))
	for i, item := range items {
		out[i] = item
	}
	return out
}
