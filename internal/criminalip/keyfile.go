package criminalip

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// keyFileFields are the names the original tool accepted, in its order.
var keyFileFields = []string{"api_key", "API_KEY", "criminalip_api_key", "key"}

// LoadKeyFile reads an API key from a JSON file like {"api_key": "..."}, the
// original tool's format (also API_KEY, criminalip_api_key or key). Errors
// name the file and say what is wrong, never the content.
func LoadKeyFile(path string) (APIKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("api key file: %w", err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		return "", fmt.Errorf("api key file %s: not a JSON object like {\"api_key\": \"...\"}", path)
	}
	for _, name := range keyFileFields {
		if s, ok := fields[name].(string); ok && strings.TrimSpace(s) != "" {
			return APIKey(strings.TrimSpace(s)), nil
		}
	}
	return "", fmt.Errorf("api key file %s: no non-empty string field %q", path, "api_key")
}
