package taskertype

import (
	"os"
	"strings"
	"testing"
)

func TestTheDocsDrawTheMachinesAsTheyAre(t *testing.T) {
	doc, err := os.ReadFile("../docs/state-machines.md")
	if err != nil {
		t.Fatal(err)
	}
	task, step := Mermaid()
	for name, diagram := range map[string]string{"task": task, "step": step} {
		if !strings.Contains(string(doc), "```mermaid\n"+diagram+"```") {
			t.Errorf("docs/state-machines.md does not hold the current %s machine; regenerate it with taskertype.Mermaid():\n%s", name, diagram)
		}
	}
}
