package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
)

// ListQuery selects the keys List and ListPage return.
type ListQuery struct {
	// Prefix restricts the keys to those starting with it; empty lists all.
	Prefix string
	// PageSize is the number of keys per request, 1-1000; 0 means the
	// server's default (100).
	PageSize int
	// Values includes each key's value.
	Values bool
	// Stale serves each page from the receiving node's own state.
	Stale bool
}

// Page is one page of a listing.
type Page struct {
	Items []Item
	// Cursor continues the listing after this page; empty when Complete.
	Cursor string
	// Complete is true on the last page.
	Complete bool
}

// ListPage reads one page of live keys in byte order, starting after cursor
// (empty for the first page).
func (c *Client) ListPage(ctx context.Context, q ListQuery, cursor string) (Page, error) {
	v := url.Values{}
	if q.Prefix != "" {
		v.Set("prefix", q.Prefix)
	}
	if q.PageSize != 0 {
		v.Set("limit", strconv.Itoa(q.PageSize))
	}
	if q.Values {
		v.Set("values", "true")
	}
	if q.Stale {
		v.Set("consistency", "stale")
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	res, err := c.do(ctx, &call{method: http.MethodGet, path: "/kv/items", query: v, replayable: true, read: true})
	if err != nil {
		return Page{}, err
	}
	var d struct {
		Items    []itemData `json:"items"`
		Cursor   *string    `json:"cursor"`
		Complete bool       `json:"complete"`
	}
	if err := decodeData(res, &d); err != nil {
		return Page{}, err
	}
	p := Page{Items: make([]Item, len(d.Items)), Complete: d.Complete}
	idx := indexOf(res.header)
	for i, it := range d.Items {
		p.Items[i] = it.item()
		p.Items[i].Index = idx
	}
	if d.Cursor != nil {
		p.Cursor = *d.Cursor
	}
	return p, nil
}

// List iterates over every live key matching q, in byte order, fetching
// pages as it goes. Each page is a separate read: a key that exists for the
// whole iteration is yielded exactly once, keys written meanwhile may or may
// not appear. An error is yielded once, with a zero Item, and ends the
// iteration.
//
//	for it, err := range c.List(ctx, client.ListQuery{Prefix: "session-"}) {
//		if err != nil { return err }
//		fmt.Println(it.Key)
//	}
func (c *Client) List(ctx context.Context, q ListQuery) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		cursor := ""
		for {
			p, err := c.ListPage(ctx, q, cursor)
			if err != nil {
				yield(Item{}, err)
				return
			}
			for _, it := range p.Items {
				if !yield(it, nil) {
					return
				}
			}
			if p.Complete || p.Cursor == "" {
				return
			}
			cursor = p.Cursor
		}
	}
}
