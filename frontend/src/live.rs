//! Live order status over server-sent events (`EventSource`), for the payment screen.
//!
//! The browser reconnects an `EventSource` by itself after a dropped connection; it
//! gives up (state `CLOSED`) when the server refuses it outright. The caller decides
//! what an error means (fall back to polling) from [`LiveEvent::Error`].

use std::rc::Rc;

use api_types::payment::OrderResponse;
use serde::de::DeserializeOwned;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Event, EventSource, MessageEvent};

/// What the stream reports (`T`: the JSON of a status frame).
pub enum LiveEvent<T = OrderResponse> {
    /// An `event: status` frame: the order as it stands now.
    Status(Box<T>),
    /// The connection failed; `closed` when the browser will not retry.
    Error { closed: bool },
}

/// An open event stream; closed when dropped.
pub struct LiveStream {
    source: EventSource,
    _on_status: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
}

impl LiveStream {
    /// Opens `url` (same origin, token in the query) and reports to `on_event`.
    pub fn open<T: DeserializeOwned + 'static>(
        url: &str,
        on_event: Rc<dyn Fn(LiveEvent<T>)>,
    ) -> Result<Self, JsValue> {
        let source = EventSource::new(url)?;

        let report = on_event.clone();
        let on_status = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            // A frame that does not parse is skipped; the next one carries the full state.
            let order = ev
                .data()
                .as_string()
                .and_then(|text| serde_json::from_str::<T>(&text).ok());
            if let Some(order) = order {
                report(LiveEvent::Status(Box::new(order)));
            }
        });
        source.add_event_listener_with_callback("status", on_status.as_ref().unchecked_ref())?;

        let watched = source.clone();
        let on_error = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            let closed = watched.ready_state() == EventSource::CLOSED;
            on_event(LiveEvent::Error { closed });
        });
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));

        Ok(LiveStream {
            source,
            _on_status: on_status,
            _on_error: on_error,
        })
    }

    /// Stops the stream (no reconnects); the handlers stay alive until drop.
    pub fn close(&self) {
        self.source.close();
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.source.set_onerror(None);
        self.source.close();
    }
}
