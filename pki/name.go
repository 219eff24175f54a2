package pki

import "fmt"

// ValidateName checks the name of a node or client identity, as certificates
// carry it: [a-z0-9][a-z0-9_-]{0,62}.
func ValidateName(name string) error { return checkName("node name", name) }

// checkName checks a name of the form [a-z0-9][a-z0-9_-]{0,62}; what says
// what it names.
func checkName(what, name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%s %q must be 1 to 63 characters", what, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_')) {
			return fmt.Errorf("%s %q must match [a-z0-9][a-z0-9_-]{0,62}", what, name)
		}
	}
	return nil
}

// ValidateIdentityName checks the name of an identity (a client's or a
// node's, as its certificate's CN carries it): the form of ValidateName,
// said of an identity name.
func ValidateIdentityName(name string) error { return checkName("identity name", name) }
