package console

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/coredns-cip/coredns-cip/internal/budget"
)

// The admin API's JSON, as the issue-14 contract writes it. Keys are
// matched without regard to case, so the older PascalCase of GET
// /v1/clients reads too. Fields the console does not show are left out.

// Decision is one block decision, active or ended.
type Decision struct {
	ID               string       `json:"id"`
	IP               string       `json:"ip"`
	Range            string       `json:"range"`
	State            string       `json:"state"`
	Origin           string       `json:"origin"`
	Scope            string       `json:"scope"`
	Port             int          `json:"port"`
	Narrowed         string       `json:"narrowed"`
	Monitor          bool         `json:"monitor"`
	Reasons          []string     `json:"reasons"`
	Factors          []string     `json:"factors"`
	Evidence         evidence     `json:"evidence"`
	Clients          []string     `json:"clients"`
	Events           []string     `json:"events"`
	Qnames           []string     `json:"qnames"`
	Rewrites         int64        `json:"rewrites"`
	Created          time.Time    `json:"created"`
	Expires          time.Time    `json:"expires"`
	TTLSeconds       int64        `json:"ttl_seconds"`
	RemainingSeconds int64        `json:"remaining_seconds"`
	Repeat           int          `json:"repeat"`
	Actor            string       `json:"actor"`
	Reason           string       `json:"reason"`
	Hooks            []Delivery   `json:"hooks"`
	Lifted           *Lift        `json:"lifted"`
	Timeline         []TimeRecord `json:"timeline"` // GET /v1/decisions/{id} only
}

// Target is what the decision blocks: its IP or its range.
func (d Decision) Target() string {
	if d.Range != "" {
		return d.Range
	}
	return d.IP
}

// Delivery is a hook's account of a decision.
type Delivery struct {
	Hook        string    `json:"hook"`
	State       string    `json:"state"` // pending | delivered | failed
	DeliveredAt time.Time `json:"delivered_at"`
	Attempts    int       `json:"attempts"`
	Error       string    `json:"error"`
}

// Lift says who lifted a decision, when and why.
type Lift struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason"`
}

// TimeRecord is one step of a decision's timeline.
type TimeRecord struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // event | verdict | block | rewrite | hook | lift | expire
	Detail string    `json:"detail"`
}

// evidence is a decision's evidence as sorted key/value text: its keys
// differ by factor, and the console shows them all as they come.
type evidence []keyValue

type keyValue struct{ Key, Value string }

func (e *evidence) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*e = (*e)[:0]
	for k, v := range m {
		*e = append(*e, keyValue{k, jsonText(v)})
	}
	slices.SortFunc(*e, func(a, b keyValue) int { return strings.Compare(a.Key, b.Key) })
	return nil
}

// MarshalJSON writes the object back, so that a Decision reads as it was
// written.
func (e evidence) MarshalJSON() ([]byte, error) {
	m := make(map[string]string, len(e))
	for _, kv := range e {
		m[kv.Key] = kv.Value
	}
	return json.Marshal(m)
}

// jsonText is a JSON value as a person reads it: a string without quotes,
// a list of scalars joined with commas, anything else compact JSON.
func jsonText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var list []any
	if json.Unmarshal(v, &list) == nil {
		parts := make([]string, 0, len(list))
		for _, x := range list {
			if str, ok := x.(string); ok {
				parts = append(parts, str)
				continue
			}
			b, _ := json.Marshal(x)
			parts = append(parts, string(b))
		}
		return strings.Join(parts, ", ")
	}
	return string(v)
}

// decisionPage is GET /v1/decisions.
type decisionPage struct {
	Decisions  []Decision `json:"decisions"`
	NextCursor string     `json:"next_cursor"`
}

// status is GET /v1/status: this node's health and exact counts.
type status struct {
	API struct {
		State          string     `json:"state"` // ok | failing | bad_key | quota
		LastError      string     `json:"last_error"`
		LastErrorAt    *time.Time `json:"last_error_at"`
		Calls24h       int        `json:"calls_24h"`
		Errors24h      int        `json:"errors_24h"`
		QuotaErrors24h int        `json:"quota_errors_24h"`
	} `json:"api"`
	Hooks     []statusHook `json:"hooks"`
	Decisions struct {
		Active         int `json:"active"`
		ActiveEveryone int `json:"active_everyone"`
		ActiveTagged   int `json:"active_tagged"`
		ActiveMonitor  int `json:"active_monitor"`
	} `json:"decisions"`
	TaggedClients int `json:"tagged_clients"`
	Events24h     int `json:"events_24h"`
	State         struct {
		Configured bool   `json:"configured"`
		Writable   bool   `json:"writable"`
		Error      string `json:"error"`
	} `json:"state"`
	Fleet struct {
		Configured bool `json:"configured"`
		Up         bool `json:"up"`
	} `json:"fleet"`
	// Budget is the API budget (`budget`); nil without one.
	Budget *budget.Status `json:"budget"`
}

// statusHook is one hook's health in GET /v1/status.
type statusHook struct {
	Hook        string     `json:"hook"`
	Pending     int        `json:"pending"`
	Failing     bool       `json:"failing"`
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at"`
}

// countPage is a list page read only to count its items.
type countPage struct {
	Events     []json.RawMessage `json:"events"`
	NextCursor string            `json:"next_cursor"`
}

// EventSummary is one event of GET /v1/events.
type EventSummary struct {
	ID          string    `json:"id"`
	Client      string    `json:"client"`
	Type        string    `json:"type"`
	Ref         string    `json:"ref"`
	At          time.Time `json:"at"`
	Received    time.Time `json:"received"`
	By          string    `json:"by"`
	Backtracked int       `json:"backtracked"`
	Decisions   []string  `json:"decisions"`
}

type eventPage struct {
	Events     []EventSummary `json:"events"`
	NextCursor string         `json:"next_cursor"`
}

// EventDetail is GET /v1/events/{id}.
type EventDetail struct {
	ID    string `json:"id"`
	Event struct {
		Client string    `json:"client"`
		Type   string    `json:"type"`
		At     time.Time `json:"at"`
		Window string    `json:"window"`
		Watch  string    `json:"watch"`
		Ref    string    `json:"ref"`
		// Severity and Labels are what the sender said beyond the event.
		Severity string            `json:"severity"`
		Labels   map[string]string `json:"labels"`
	} `json:"event"`
	Received time.Time `json:"received"`
	Accepted struct {
		Backtracked int       `json:"backtracked"`
		Queued      int       `json:"queued"`
		Cached      int       `json:"cached"`
		Dropped     int       `json:"dropped"`
		TaggedUntil time.Time `json:"tagged_until"`
		Warning     string    `json:"warning"`
	} `json:"accepted"`
	Found     []FoundIP `json:"found"`
	By        string    `json:"by"`
	Decisions []string  `json:"decisions"`
}

// FoundIP is one IP an event's window held, with its verdict now.
type FoundIP struct {
	IP      string    `json:"ip"`
	Names   []string  `json:"names"`
	Ports   []int     `json:"ports"`
	First   time.Time `json:"first_seen"`
	Last    time.Time `json:"last_seen"`
	Count   int       `json:"count"`
	Result  string    `json:"result"`
	State   string    `json:"state"`
	Verdict *struct {
		Outcome  string       `json:"outcome"`
		Reasons  []reasonText `json:"reasons"`
		Decision string       `json:"decision"`
	} `json:"verdict"`
}

// reasonText is a verdict's reason, which the API writes either as text or
// as {"factor", "detail"}.
type reasonText string

func (r *reasonText) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*r = reasonText(s)
		return nil
	}
	var o struct {
		Factor string `json:"factor"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*r = reasonText(strings.ToUpper(o.Factor) + ": " + o.Detail)
	return nil
}

// Client is a tagged client of GET /v1/clients.
type Client struct {
	Client string    `json:"client"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Event  string    `json:"event"`
	Ref    string    `json:"ref"`
}

// clientList is GET /v1/clients: the contract's object, or the bare list
// the API answered before it.
type clientList []Client

func (l *clientList) UnmarshalJSON(b []byte) error {
	var list []Client
	if json.Unmarshal(b, &list) == nil {
		*l = list
		return nil
	}
	var obj struct {
		Clients []Client `json:"clients"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	*l = obj.Clients
	return nil
}
