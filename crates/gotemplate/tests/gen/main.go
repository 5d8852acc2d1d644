// Command gen runs every case of corpus.json through Go's text/template with
// docker's function map and writes the outputs back as the expected results.
//
//	cd crates/gotemplate/tests/gen && go run . ../corpus.json
//
// Data conventions (the Rust test reads them the same way): a JSON object
// with "__struct__": true is a struct (fields sorted by name, each an
// interface{}), one with "__strmap__": true a map[string]string, one with
// "__strlist__": [...] a []string (docker's Cmd, Env...), any other
// a map[string]interface{}; integers are int, other numbers float64.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"
)

type Case struct {
	Tmpl       string          `json:"tmpl"`
	Data       json.RawMessage `json:"data,omitempty"`
	MissingErr bool            `json:"missingkey_error,omitempty"`
	Out        *string         `json:"out,omitempty"`
	Err        *string         `json:"err,omitempty"`
}

type File struct {
	Data  json.RawMessage `json:"data"`
	Cases []Case          `json:"cases"`
	// Texts through docker's tabwriter: NewWriter(out, 10, 1, 3, ' ', 0).
	Tables []Table `json:"tables"`
}

type Table struct {
	In  string `json:"in"`
	Out string `json:"out"`
}

// docker's basicFunctions (cli/templates/templates.go).
var funcs = template.FuncMap{
	"json": func(v interface{}) string {
		buf := &bytes.Buffer{}
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		enc.Encode(v)
		return strings.TrimSpace(buf.String())
	},
	"split": strings.Split,
	"join":  strings.Join,
	"title": strings.Title,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"pad": func(source string, prefix, suffix int) string {
		if source == "" {
			return source
		}
		return strings.Repeat(" ", prefix) + source + strings.Repeat(" ", suffix)
	},
	"truncate": func(source string, length int) string {
		if len(source) < length {
			return source
		}
		return source[:length]
	},
}

func convert(v interface{}) interface{} {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, e := range x {
			out[i] = convert(e)
		}
		return out
	case map[string]interface{}:
		if _, ok := x["__struct__"]; ok {
			var names []string
			for k := range x {
				if k != "__struct__" {
					names = append(names, k)
				}
			}
			sort.Strings(names)
			var fields []reflect.StructField
			for _, n := range names {
				fields = append(fields, reflect.StructField{Name: n, Type: reflect.TypeOf((*interface{})(nil)).Elem()})
			}
			s := reflect.New(reflect.StructOf(fields)).Elem()
			for i, n := range names {
				if c := convert(x[n]); c != nil {
					s.Field(i).Set(reflect.ValueOf(c))
				}
			}
			return s.Interface()
		}
		if l, ok := x["__strlist__"]; ok {
			out := []string{}
			for _, e := range l.([]interface{}) {
				out = append(out, e.(string))
			}
			return out
		}
		if _, ok := x["__strmap__"]; ok {
			out := map[string]string{}
			for k, e := range x {
				if k != "__strmap__" {
					out[k] = e.(string)
				}
			}
			return out
		}
		out := map[string]interface{}{}
		for k, e := range x {
			out[k] = convert(e)
		}
		return out
	}
	return v
}

func decode(raw json.RawMessage) interface{} {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	return convert(v)
}

func main() {
	path := os.Args[1]
	raw, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	var f File
	if err := json.Unmarshal(raw, &f); err != nil {
		panic(err)
	}
	shared := decode(f.Data)
	for i := range f.Cases {
		c := &f.Cases[i]
		c.Out, c.Err = nil, nil
		data := shared
		if len(c.Data) > 0 {
			data = decode(c.Data)
		}
		// docker names its templates "" (template.New("")).
		t := template.New("").Funcs(funcs)
		if c.MissingErr {
			t = t.Option("missingkey=error")
		}
		var buf bytes.Buffer
		t, err := t.Parse(c.Tmpl)
		if err == nil {
			err = t.Execute(&buf, data)
		}
		if err != nil {
			e := err.Error()
			c.Err = &e
		} else {
			o := buf.String()
			c.Out = &o
		}
	}
	for i := range f.Tables {
		var buf bytes.Buffer
		w := tabwriter.NewWriter(&buf, 10, 1, 3, ' ', 0)
		w.Write([]byte(f.Tables[i].In))
		w.Flush()
		f.Tables[i].Out = buf.String()
	}
	out, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		panic(err)
	}
	fmt.Fprintf(os.Stderr, "%d cases\n", len(f.Cases))
}
