//! Property tests: every record, request and response encodes and decodes back to
//! itself, exactly (no trailing bytes), and whole frames survive the frame decoder.

mod common;

use common::*;
use proptest::prelude::*;
use std::fmt::Debug;
use transport::jute::*;

/// encode → decode_exact gives the value back, and re-encoding gives the same bytes.
fn assert_round_trip<T: Wire + PartialEq + Debug>(v: &T) -> Result<(), TestCaseError> {
    let bytes = v.to_bytes();
    prop_assert!(bytes.len() >= T::MIN_BYTES, "MIN_BYTES overstated");
    let back = T::from_bytes_exact(&bytes);
    prop_assert_eq!(back.as_ref(), Ok(v));
    prop_assert_eq!(back.unwrap().to_bytes(), bytes);
    Ok(())
}

/// One property test per record type.
macro_rules! record_round_trips {
    ($($name:ident: $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(config(128))]
            $(
                #[test]
                fn $name(v in $strategy) {
                    assert_round_trip(&v)?;
                }
            )*
        }
    };
}

record_round_trips! {
    stat_round_trips: stat();
    acl_round_trips: acls();
    create_round_trips: create();
    create_ttl_round_trips: create_ttl();
    delete_round_trips: delete();
    set_data_round_trips: set_data();
    check_round_trips: check();
    get_data_round_trips: get_data();
    get_children_round_trips: get_children();
    set_watches_round_trips: set_watches();
    set_watches2_round_trips: set_watches2();
    reconfig_round_trips: reconfig();
    auth_round_trips: auth();
    multi_request_round_trips: multi_request();
    multi_response_round_trips: multi_response();
    connect_request_round_trips: connect_request();
    connect_response_round_trips: connect_response();
    request_header_round_trips: (any::<i32>(), any::<i32>()).prop_map(|(xid, op)| RequestHeader { xid, op });
    reply_header_round_trips: (any::<i32>(), any::<i64>(), any::<i32>())
        .prop_map(|(xid, zxid, err)| ReplyHeader { xid, zxid, err });
    multi_header_round_trips: (any::<i32>(), any::<bool>(), any::<i32>())
        .prop_map(|(op, done, err)| MultiHeader { op, done, err });
    id_round_trips: id();
    exists_round_trips: path_watch().prop_map(|(path, watch)| ExistsRequest { path, watch });
    get_acl_round_trips: string().prop_map(|path| GetAclRequest { path });
    set_acl_round_trips: (string(), acls(), any::<i32>())
        .prop_map(|(path, acl, version)| SetAclRequest { path, acl, version });
    get_children2_round_trips: path_watch()
        .prop_map(|(path, watch)| GetChildren2Request { path, watch });
    get_all_children_number_round_trips: string()
        .prop_map(|path| GetAllChildrenNumberRequest { path });
    get_ephemerals_round_trips: string().prop_map(|prefix_path| GetEphemeralsRequest { prefix_path });
    sync_round_trips: string().prop_map(|path| SyncRequest { path });
    check_watches_round_trips: path_version()
        .prop_map(|(path, watcher_type)| CheckWatchesRequest { path, watcher_type });
    remove_watches_round_trips: path_version()
        .prop_map(|(path, watcher_type)| RemoveWatchesRequest { path, watcher_type });
    add_watch_round_trips: path_version().prop_map(|(path, mode)| AddWatchRequest { path, mode });
    sasl_request_round_trips: buffer().prop_map(|token| GetSaslRequest { token });
    create_response_round_trips: string().prop_map(|path| CreateResponse { path });
    create2_response_round_trips: (string(), stat())
        .prop_map(|(path, stat)| Create2Response { path, stat });
    stat_response_round_trips: stat().prop_map(|stat| StatResponse { stat });
    get_data_response_round_trips: (buffer(), stat())
        .prop_map(|(data, stat)| GetDataResponse { data, stat });
    get_acl_response_round_trips: (acls(), stat()).prop_map(|(acl, stat)| GetAclResponse { acl, stat });
    get_children_response_round_trips: strings().prop_map(|children| GetChildrenResponse { children });
    get_children2_response_round_trips: (strings(), stat())
        .prop_map(|(children, stat)| GetChildren2Response { children, stat });
    get_all_children_number_response_round_trips: any::<i32>()
        .prop_map(|total_number| GetAllChildrenNumberResponse { total_number });
    get_ephemerals_response_round_trips: strings()
        .prop_map(|ephemerals| GetEphemeralsResponse { ephemerals });
    sync_response_round_trips: string().prop_map(|path| SyncResponse { path });
    error_response_round_trips: any::<i32>().prop_map(|err| ErrorResponse { err });
    who_am_i_response_round_trips: proptest::collection::vec(
        (string(), string()).prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user }),
        0..4,
    )
    .prop_map(|client_info| WhoAmIResponse { client_info });
    sasl_response_round_trips: buffer().prop_map(|token| SetSaslResponse { token });
    watcher_event_round_trips: (any::<i32>(), any::<i32>(), string())
        .prop_map(|(event_type, state, path)| WatcherEvent { event_type, state, path });
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn requests_round_trip_through_frames(req in request(), xid in any::<i32>()) {
        let mut frame = Vec::new();
        let body_len = req.encode_frame(xid, &mut frame);
        let status = FrameDecoder::default().decode(&frame).unwrap();
        let FrameStatus::Frame { body, consumed } = status else {
            return Err(TestCaseError::fail("whole frame not recognised"));
        };
        prop_assert_eq!((consumed, body.len()), (frame.len(), body_len));
        let (header, back) = Request::decode_body(body).unwrap();
        prop_assert_eq!(header, RequestHeader::new(xid, req.op_code()));
        prop_assert_eq!(&back, &req);
        let mut again = Vec::new();
        back.encode_frame(xid, &mut again);
        prop_assert_eq!(again, frame);
    }

    #[test]
    fn responses_round_trip_through_frames(
        (op, rsp) in op_and_response(),
        xid in 0..i32::MAX,
        zxid in any::<i64>(),
    ) {
        let xid = if matches!(rsp, Response::Notification(_)) { -1 } else { xid };
        let header = ReplyHeader { xid, zxid, err: 0 };
        let mut frame = Vec::new();
        rsp.encode_frame(&header, &mut frame);
        let FrameStatus::Frame { body, .. } = FrameDecoder::default().decode(&frame).unwrap() else {
            return Err(TestCaseError::fail("whole frame not recognised"));
        };
        let (h, rest) = ReplyHeader::split(body).unwrap();
        prop_assert_eq!(h, header);
        let back = Response::decode(op, &h, rest).unwrap();
        prop_assert_eq!(&back, &rsp);
        let mut again = Vec::new();
        back.encode_frame(&h, &mut again);
        prop_assert_eq!(again, frame);
    }

    #[test]
    fn error_replies_decode_empty_for_every_op(
        (op, _rsp) in op_and_response(),
        err in any::<i32>().prop_filter("nonzero", |e| *e != 0),
    ) {
        prop_assume!(op != OpCode::Notification);
        let header = ReplyHeader { xid: 7, zxid: 1, err };
        let mut body = Vec::new();
        Response::Empty.encode(&header, &mut body);
        let (h, rest) = ReplyHeader::split(&body).unwrap();
        prop_assert_eq!(Response::decode(op, &h, rest), Ok(Response::Empty));
    }

    #[test]
    fn requests_decode_from_any_split_of_a_stream(
        reqs in proptest::collection::vec(request(), 1..6),
        chunk in 1usize..64,
    ) {
        let mut stream = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            r.encode_frame(i as i32, &mut stream);
        }
        let mut fb = FrameBuffer::new(FrameDecoder::default());
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            fb.extend_from_slice(piece);
            while let Some(body) = fb.next_frame().unwrap() {
                got.push(Request::decode_body(body).unwrap().1);
            }
        }
        prop_assert_eq!(got, reqs);
    }
}
