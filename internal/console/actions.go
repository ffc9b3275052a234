package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// maxForm bounds a form's body: the largest is a reason of a few hundred
// characters.
const maxForm = 16 << 10

// maxReason is the longest reason the forms take; the API takes longer,
// but a reason is a sentence, not a report.
const maxReason = 256

// formReason reads the required reason of a form, or says what is wrong.
func formReason(r *http.Request) (string, string) {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	switch {
	case reason == "":
		return "", "A reason is required: it goes into the audit log."
	case len(reason) > maxReason:
		return "", fmt.Sprintf("The reason is longer than %d characters.", maxReason)
	}
	return reason, ""
}

// done ends a form: the message for the next page, then back to where the
// form was (Post/Redirect/Get, so a reload does not send it again). A
// refusal of the API is shown the same way, on the page the form was on.
func (c *Console) done(w http.ResponseWriter, r *http.Request, s *session, back string, n notice, err error) {
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status == http.StatusUnauthorized {
			c.failed(w, r, s, err)
			return
		}
		n = notice{Text: ae.Msg, Bad: true}
	}
	c.sessions.setFlash(s, n)
	http.Redirect(w, r, localPath(back), http.StatusSeeOther)
}

// lift is the decision page's lift form: DELETE /v1/decisions/{id} with
// the reason; the API lifts it through the engine and audits the token.
func (c *Console) lift(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	back := "/ui/decisions/" + url.PathEscape(id)
	reason, bad := formReason(r)
	if bad != "" {
		c.done(w, r, s, back, notice{Text: bad, Bad: true}, nil)
		return
	}
	var d Decision
	err := c.call(r, s, http.MethodDelete, "/v1/decisions/"+url.PathEscape(id), url.Values{"reason": {reason}}, nil, &d)
	c.done(w, r, s, back, notice{Text: "Decision " + id + " lifted."}, err)
}

// allow is the allowlist form: POST /v1/allow with the value, the reason
// and an optional expiry.
func (c *Console) allow(w http.ResponseWriter, r *http.Request, s *session) {
	back := r.PostFormValue("back")
	value := strings.TrimSpace(r.PostFormValue("value"))
	reason, bad := formReason(r)
	if value == "" {
		bad = "Choose what to allowlist."
	}
	if bad != "" {
		c.done(w, r, s, back, notice{Text: bad, Bad: true}, nil)
		return
	}
	body := map[string]string{"value": value, "reason": reason}
	if until := strings.TrimSpace(r.PostFormValue("until")); until != "" {
		body["until"] = until
	}
	var res struct {
		Value  string   `json:"value"`
		Until  string   `json:"until"`
		Lifted []string `json:"lifted"`
	}
	err := c.call(r, s, http.MethodPost, "/v1/allow", nil, body, &res)
	msg := value + " allowlisted"
	if n := len(res.Lifted); n > 0 {
		msg += fmt.Sprintf("; %d block(s) lifted", n)
	}
	c.done(w, r, s, back, notice{Text: msg + "."}, err)
}

// untag is the clients page's untag button: DELETE /v1/clients/{ip}.
func (c *Console) untag(w http.ResponseWriter, r *http.Request, s *session) {
	ip := r.PathValue("ip")
	err := c.call(r, s, http.MethodDelete, "/v1/clients/"+url.PathEscape(ip), nil, nil, nil)
	c.done(w, r, s, "/ui/clients", notice{Text: "Client " + ip + " untagged."}, err)
}
