package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/quorumkv/quorumkv/ui"
)

// The dashboard's routes. The assets are public: they are the same for
// everyone and hold no data. The page then calls the API with the key the
// user gives it, and GET /auth/whoami tells it which controls that key may
// use.

// uiRedirect serves GET /ui: a browser's address bar drops the trailing
// slash, and the page's relative asset links need it. Only GET is routed
// here, so the redirect cannot turn another method into a GET.
func (a *api) uiRedirect(*http.Request) (reply, error) {
	return reply{status: http.StatusPermanentRedirect, header: http.Header{"Location": {"/ui/"}}, body: []byte{}}, nil
}

// uiPage serves GET /ui/ and GET /ui/{asset}.
func (a *api) uiPage(r *http.Request) (reply, error) {
	asset, ok := ui.Lookup(mux.Vars(r)["asset"])
	if !ok {
		return reply{}, errAssetNotFound
	}
	h := ui.Header()
	h.Set("Content-Type", asset.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(asset.Body)))
	body := asset.Body
	return reply{status: http.StatusOK, header: h, stream: func(w http.ResponseWriter) { _, _ = w.Write(body) }}, nil
}

// whoami serves GET /auth/whoami: the name and scope of the key the request
// was made with (never the key), so a client can tell what it may do
// before trying. With authentication off it is the anonymous admin.
func (a *api) whoami(r *http.Request) (reply, error) {
	key, err := a.authenticate(r)
	if err != nil { // unreachable: dispatch authenticated this request
		return reply{}, err
	}
	return dataReply(http.StatusOK, struct {
		Name         string `json:"name"`
		Scope        string `json:"scope"`
		AuthDisabled bool   `json:"authDisabled"`
	}{key.Name, key.Scope.String(), a.cfg.InsecureNoAuth})
}

var errAssetNotFound = &apiError{
	status: http.StatusNotFound, code: "not_found",
	message: "The dashboard has no file of this name; open /ui/ for the dashboard.",
}
