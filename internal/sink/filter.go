package sink

import "fmt"

// changeFilter keeps the changes a notification hook is told of.
type changeFilter struct {
	on    map[Action]bool // block, unblock, allow, notice; nil: every change
	scope Scope           // "": both scopes
}

// newChangeFilter checks on (block, unblock, allow or notice) and scope
// (everyone or tagged); empty ones keep every change. An on of notice
// alone keeps no change: the hook is told of notices only.
func newChangeFilter(on []Action, scope Scope) (changeFilter, error) {
	f := changeFilter{scope: scope}
	if len(on) > 0 {
		f.on = make(map[Action]bool)
		for _, a := range on {
			if a != Block && a != Unblock && a != Allow && a != Notices {
				return f, fmt.Errorf("on %q: block, unblock, allow or notice", a)
			}
			f.on[a] = true
		}
	}
	if scope != "" && scope != ScopeEveryone && scope != ScopeTagged {
		return f, fmt.Errorf("scope %q: everyone or tagged", scope)
	}
	return f, nil
}

// wants reports whether ch passes the filter.
func (f changeFilter) wants(ch Change) bool {
	if f.on != nil && !f.on[notice(ch)] {
		return false
	}
	return f.scope == "" || ch.EffectiveScope() == f.scope
}

// NotifyingWebhook is a Webhook with on/scope filters: a Notifier, told
// only of the changes it wants and of each decision once (never a Replay,
// never reconciled), as a chat hook is.
type NotifyingWebhook struct {
	*Webhook
	filter changeFilter
}

// Notifying returns w as a Notifier that wants only the changes whose
// action (block, unblock, or allow: an unblock by an allowlist entry) is
// in on, and whose scope is scope; empty ones keep every change. It is
// told of notices (Notify) only if on lists notice; its template, if any,
// must then render a sample notice (as JSON, if the body is JSON).
func (w *Webhook) Notifying(on []Action, scope Scope) (*NotifyingWebhook, error) {
	f, err := newChangeFilter(on, scope)
	if err != nil {
		return nil, fmt.Errorf("sink webhook: %w", err)
	}
	if f.on[Notices] && w.template != nil {
		if err := w.template.tryNotice(w.contentType()); err != nil {
			return nil, err
		}
	}
	return &NotifyingWebhook{Webhook: w, filter: f}, nil
}

// Wants reports whether ch passes the filters.
func (n *NotifyingWebhook) Wants(ch Change) bool { return n.filter.wants(ch) }
