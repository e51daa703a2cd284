package polkit

import (
	"encoding/xml"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/netgrant/netgrant/internal/names"
)

const policyFile = "../data/org.netgrant.policy"

// apiDefaults is the table in API.md, "Authorization": any, inactive, active.
func apiDefaults() map[string][3]string {
	defaults := map[string][3]string{}
	for _, a := range names.Actions {
		defaults[a.ID] = a.Defaults
	}
	return defaults
}

type policyConfig struct {
	Vendor  string `xml:"vendor"`
	Actions []struct {
		ID          string `xml:"id,attr"`
		Description string `xml:"description"`
		Message     string `xml:"message"`
		Defaults    struct {
			Any      string `xml:"allow_any"`
			Inactive string `xml:"allow_inactive"`
			Active   string `xml:"allow_active"`
		} `xml:"defaults"`
	} `xml:"action"`
}

func TestPolicyMatchesTheAPI(t *testing.T) {
	data, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	var policy policyConfig
	if err := xml.Unmarshal(data, &policy); err != nil {
		t.Fatalf("parsing %s: %v", policyFile, err)
	}
	if policy.Vendor != "netgrant" {
		t.Errorf("vendor %q, want netgrant", policy.Vendor)
	}
	seen := map[string]bool{}
	for _, action := range policy.Actions {
		want, ok := apiDefaults()[action.ID]
		if !ok {
			t.Errorf("action %s is not in the API", action.ID)
			continue
		}
		if seen[action.ID] {
			t.Errorf("action %s declared twice", action.ID)
		}
		seen[action.ID] = true
		got := [3]string{action.Defaults.Any, action.Defaults.Inactive, action.Defaults.Active}
		if got != want {
			t.Errorf("%s defaults (any/inactive/active) %v, want %v", action.ID, got, want)
		}
		// polkit shows these in the authentication dialog.
		if strings.TrimSpace(action.Description) == "" || !strings.HasPrefix(action.Message, "Authentication is required to ") {
			t.Errorf("%s: description %q, message %q: the dialog would not tell the user what is asked", action.ID, action.Description, action.Message)
		}
	}
	for id := range apiDefaults() {
		if !seen[id] {
			t.Errorf("action %s of the API is missing", id)
		}
	}
}

// polkitd ignores a whole file it cannot parse, which would deny every call.
func TestPolicyIsValidForPolkit(t *testing.T) {
	const dtd = "/usr/share/polkit-1/policyconfig-1.dtd"
	if _, err := os.Stat(dtd); err != nil {
		t.Skip("polkit's DTD is not installed")
	}
	if _, err := exec.LookPath("xmllint"); err != nil {
		t.Skip("xmllint is not installed (libxml2-utils)")
	}
	out, err := exec.Command("xmllint", "--noout", "--dtdvalid", dtd, policyFile).CombinedOutput()
	if err != nil {
		t.Fatalf("xmllint: %v\n%s", err, out)
	}
}

// netgrantd(8) lists every action with its defaults.
func TestManualListsEveryAction(t *testing.T) {
	data, err := os.ReadFile("../data/man/netgrantd.8.scd")
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	for _, a := range names.Actions {
		i := strings.Index(page, "|  "+a.ID+"\n")
		if i < 0 {
			t.Errorf("netgrantd(8) does not list %s", a.ID)
			continue
		}
		row := strings.SplitN(page[i:], "\n", 4)
		defaults := strings.Join(a.Defaults[:], ", ")
		if a.Defaults[0] == a.Defaults[1] && a.Defaults[1] == a.Defaults[2] {
			defaults = a.Defaults[0] + " (all three)"
		}
		if len(row) < 3 || row[2] != ":- "+defaults {
			t.Errorf("netgrantd(8) gives %s the defaults %q, want %q", a.ID, row[2], ":- "+defaults)
		}
	}
}
