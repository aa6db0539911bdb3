#!/usr/bin/env python3
"""https through hconnd to an nginx TLS server whose certificate is made at
test time: verification against a given CA, its failures, the insecure
opt-out, SNI/name override, minimum version, and pooled TLS connections."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SMALL_BODY, big_bytes, header_value  # noqa: E402


class HttpsToNginx(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.Nginx(tls=True)
        cls.addClassCleanup(cls.nginx.stop)
        cls.nginx.start()

    def setUp(self):
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)
        self.rid = 0

    def get(self, url, **fields):
        self.rid += 1
        head, body, last = self.w.request(self.rid, "GET", url, **fields)
        self.skipIfUnsupported(last)
        return head, body, last

    def host_get(self, tls, target="/small.txt", host="127.0.0.1"):
        self.rid += 1
        self.w.send({"id": self.rid, "method": "GET", "host": host,
                     "port": self.nginx.tls_port, "target": target,
                     "tls": tls})
        head, body, last = self.w.read_response(self.rid)
        self.skipIfUnsupported(last)
        return head, body, last

    def test_https_get_verified_with_the_test_ca(self):
        head, body, end = self.host_get({"ca_file": self.nginx.ca_file})
        self.assertOkResponse(head, end)
        self.assertEqual(body, SMALL_BODY)

    def test_https_url_with_system_trust_store_fails_verification(self):
        head, body, err = self.get(self.nginx.tls_url("/small.txt"))
        self.assertIsNone(head)
        self.assertError(err, "tls_verify_failed", rid=self.rid)

    def test_certificate_from_another_ca_fails_verification(self):
        head, body, err = self.host_get({"ca_file": self.nginx.other_ca_file})
        self.assertIsNone(head)
        self.assertError(err, "tls_verify_failed", rid=self.rid)

    def test_wrong_server_name_fails_verification(self):
        head, body, err = self.host_get({"ca_file": self.nginx.ca_file,
                                         "server_name": "wrong.example"})
        self.assertIsNone(head)
        self.assertError(err, "tls_verify_failed", rid=self.rid)

    def test_server_name_localhost_verifies(self):
        head, body, end = self.host_get({"ca_file": self.nginx.ca_file,
                                         "server_name": "localhost"})
        self.assertOkResponse(head, end)
        self.assertEqual(body, SMALL_BODY)

    def test_insecure_skips_verification(self):
        head, body, end = self.host_get({"insecure": True})
        self.assertOkResponse(head, end)
        self.assertEqual(body, SMALL_BODY)

    def test_verify_with_insecure_is_refused(self):
        self.rid += 1
        self.w.send({"id": self.rid, "method": "GET", "host": "127.0.0.1",
                     "port": self.nginx.tls_port,
                     "tls": {"verify": True, "insecure": True}})
        msg = self.w.read_message()
        self.assertEqual(msg.get("error"), "bad_message", msg)

    def test_min_version_1_3(self):
        head, body, end = self.host_get({"ca_file": self.nginx.ca_file,
                                         "min_version": "1.3"})
        self.assertOkResponse(head, end)
        self.assertEqual(header_value(head, "X-TLS-Protocol"), "TLSv1.3")

    def test_tls_connection_is_pooled(self):
        tls = {"ca_file": self.nginx.ca_file}
        head1, _, end1 = self.host_get(tls)
        self.assertOkResponse(head1, end1)
        head2, body2, end2 = self.host_get(tls, "/big.bin")
        self.assertOkResponse(head2, end2)
        self.assertEqual(body2, big_bytes())
        self.assertIs(head2["reused"], True)
        self.assertEqual(header_value(head2, "X-Connection"),
                         header_value(head1, "X-Connection"))

    def test_different_tls_settings_do_not_share_a_connection(self):
        head1, _, end1 = self.host_get({"ca_file": self.nginx.ca_file})
        self.assertOkResponse(head1, end1)
        head2, _, end2 = self.host_get({"insecure": True})
        self.assertOkResponse(head2, end2)
        self.assertIs(head2["reused"], False)

    def test_tls_to_a_plain_http_port_is_tls_failed(self):
        # nginx's plain port answers the ClientHello with an HTTP 400.
        self.rid += 1
        self.w.send({"id": self.rid, "method": "GET", "host": "127.0.0.1",
                     "port": self.nginx.port, "tls": {"insecure": True}})
        head, body, err = self.w.read_response(self.rid)
        self.skipIfUnsupported(err)
        self.assertIsNone(head)
        self.assertError(err, "tls_failed", rid=self.rid)
        self.assertIn("TLS handshake with 127.0.0.1", err["message"])

if __name__ == "__main__":
    harness.main()
