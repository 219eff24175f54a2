package main

import (
	"fmt"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/spf13/cobra"
)

// nameKind is what a positional argument names, for checking its form
// before anything is sent.
type nameKind int

const (
	anyArg       nameKind = iota // not a name: not checked here
	tableArg                     // an existing table: system tables included
	newTableArg                  // a table to create: not cortex_*
	tableOrAll                   // a table or '*' (every table)
	identityArg                  // an identity
	nodeArg                      // a node
	revokeTarget                 // a node name or a certificate fingerprint
)

// checkName checks s as a name of kind; the error says what is wrong in
// the words of the check (scope.ValidateNodeName, tables.ValidateName, ...).
func checkName(kind nameKind, s string) error {
	switch kind {
	case tableArg:
		return tables.ValidateName(s, true)
	case newTableArg:
		return tables.ValidateName(s, false)
	case tableOrAll:
		if s == "*" {
			return nil
		}
		return tables.ValidateName(s, true)
	case identityArg:
		return scope.ValidateIdentityName(s)
	case nodeArg:
		return scope.ValidateNodeName(s)
	case revokeTarget:
		if scope.ValidateNodeName(s) == nil || fingerprintForm(s) {
			return nil
		}
		return fmt.Errorf("%w: %q is neither a node name nor a certificate fingerprint (sha256:<64 hex digits>)", tables.ErrInvalid, s)
	}
	return nil
}

// fingerprintForm reports whether s is sha256:<64 lowercase hex digits>.
func fingerprintForm(s string) bool {
	const prefix = "sha256:"
	if len(s) != len(prefix)+64 || s[:len(prefix)] != prefix {
		return false
	}
	for _, c := range []byte(s[len(prefix):]) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// named checks the number of arguments with check, then the form of each
// one given (the i-th with kinds[i]): a malformed name is a usage error
// (exit 2), as table create has always made it, before anything is sent.
func named(check cobra.PositionalArgs, kinds ...nameKind) cobra.PositionalArgs {
	check = cli.Positional(check)
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return err
		}
		for i, a := range args {
			if i >= len(kinds) {
				break
			}
			if err := checkName(kinds[i], a); err != nil {
				return cli.Usagef(cmd, "%v", err)
			}
		}
		return nil
	}
}
