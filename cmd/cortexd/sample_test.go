package main

import (
	"os"
	"reflect"
	"regexp"
	"testing"
)

// The sample configuration in docs/examples decodes, is valid, and sets
// every key cortexd knows: a key added to Config must be explained there.
func TestSampleConfigHasEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/examples/cortexd.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig(func(string) string { return "" })
	if err := decodeConfig(data, &cfg); err != nil {
		t.Fatalf("the sample does not decode: %v", err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatalf("the sample is not valid: %v", err)
	}
	typ := reflect.TypeOf(cfg)
	for i := range typ.NumField() {
		key := typ.Field(i).Tag.Get("toml")
		if key == "" {
			continue
		}
		if !regexp.MustCompile(`(?m)^` + key + ` = `).Match(data) {
			t.Errorf("the sample configuration does not set %s", key)
		}
	}
}
