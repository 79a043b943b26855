"""Operators (issue 17): the first super-administrator made by pe-admin on a fresh instance, the
admin panel's and support staff's accounts (login, lockout, sessions of their own kind), the
permission matrix of SPEC 10.3 route by route and field by field, and changes to a user that
take effect on that user's next request. Every class runs on SQLite; the same tests run on
PostgreSQL and MongoDB (parametrised classes)."""
import concurrent.futures
import json
import os
import subprocess
import time
import unittest

import pe_mongo
import pe_pg
from pe_harness import TOP, Httpd, HttpdTestCase

FAST = "PEArgon2Cost 1 1M 1\n"
ADMIN_TOOL = os.path.join(TOP, ".libs", "pe-admin")
ROOT_PW = "Azure-Pass-4242"
STAFF_PW = "Staff-Pass-7373"
USER_PW = "Zebra-Lamp-42"


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def pe_admin(httpd, *args, password=None):
    """Run pe-admin on the instance's configuration file; the password on stdin (-i)."""
    cmd = [ADMIN_TOOL, "-f", os.path.join(httpd.dir, "conf", "httpd.conf")]
    if password is not None:
        cmd.append("-i")
    return subprocess.run(cmd + list(args), input=(password + "\n") if password is not None else "",
                          capture_output=True, text=True, timeout=60)


class AdminMixin:
    """The tests; a class per store puts this in front of HttpdTestCase."""

    EXTRA_CONF = FAST + """
<Location /super-only>
    AuthType PromptEnchanter
    Require pe-role super-admin
    PEBaseURI /super-only
    PEApi core
</Location>
<Location /senior-staff>
    AuthType PromptEnchanter
    Require pe-staff-level support advanced
    PEBaseURI /senior-staff
    PEApi core
</Location>
"""
    ALLOWED_LOG_IDS = ("AH01631",)
    n = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # the first super-administrator: no SQL, no default password
        p = pe_admin(cls.httpd, "create-super", "root", "Root@Example.com", "Site Root", password=ROOT_PW)
        if p.returncode != 0:
            raise AssertionError("pe-admin create-super: %s %s" % (p.stdout, p.stderr))
        cls.root = cls.admin_login_cls("root", ROOT_PW)

    # -- helpers ----------------------------------------------------------------------------
    @classmethod
    def admin_login_cls(cls, username, password):
        r = cls.httpd.post("/v1/admin-panel/login", {"username": username, "password": password})
        assert r.status == 200, r
        return r.json["session"]["session_token"]

    def uniq(self, prefix):
        AdminMixin.n += 1
        return "%s%d%d" % (prefix, os.getpid() % 1000, AdminMixin.n)

    def new_admin(self, is_super=False):
        name = self.uniq("adm")
        r = self.httpd.post("/v1/admin-panel/create-admin",
                            {"username": name, "name": "An Admin", "email": name + "@example.com",
                             "password": STAFF_PW, "is_super_admin": is_super}, headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        return self.admin_login_cls(name, STAFF_PW)

    def new_staff(self, level, creator=None):
        name = self.uniq("st" + level[:3])
        r = self.httpd.post("/v1/support/create",
                            {"username": name, "name": "Help Desk", "email": name + "@example.com",
                             "password": STAFF_PW, "staff_level": level}, headers=bearer(creator or self.root))
        self.assertEqual(r.status, 200, r)
        s = self.httpd.post("/v1/support/login", {"username": name, "password": STAFF_PW})
        self.assertEqual(s.status, 200, s)
        self.assertEqual(s.json["staff"]["staff_level"], level)
        return s.json["session"]["session_token"]

    def new_user(self):
        name = self.uniq("usr")
        r = self.httpd.post("/v1/users/register", {"username": name, "name": "A User", "email": name + "@example.com",
                                                   "password": USER_PW})
        self.assertEqual(r.status, 201, r)
        s = self.httpd.post("/v1/users/login", {"email": name + "@example.com", "password": USER_PW})
        self.assertEqual(s.status, 200, s)
        return r.json["user_id"], r.json["api_key"], s.json["session"]["session_token"]

    def user_as_root(self, uid):
        r = self.httpd.get("/v1/admin-panel/users/" + uid, headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        return r.json

    def events(self, event_type):
        """(principal_id, username, details as compact JSON) of the stored events of a type."""
        rows = self.sql("SELECT principal_id, username, details FROM pe_security_events WHERE event_type = '%s'"
                        % event_type)
        return [(pid, name, d if isinstance(d, str) else json.dumps(d, separators=(",", ":")))
                for (pid, name, d) in rows]

    # -- the first administrator and operators' accounts ------------------------------------
    def test_cli_lists_and_resets(self):
        p = pe_admin(self.httpd, "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("root", p.stdout)
        self.assertIn("super-admin", p.stdout)
        # an administrator of the same name is refused; a weak password is refused
        self.assertEqual(pe_admin(self.httpd, "create-super", "root", "x@example.com", password=ROOT_PW).returncode, 3)
        self.assertEqual(pe_admin(self.httpd, "create-super", "other", "o@example.com", password="weak").returncode, 2)
        name = self.uniq("pw")
        self.assertEqual(pe_admin(self.httpd, "create-super", name, name + "@example.com", password=ROOT_PW).returncode,
                         0)
        tok = self.admin_login_cls(name, ROOT_PW)
        p = pe_admin(self.httpd, "passwd", name, password="New-Root-Pass-99")
        self.assertEqual(p.returncode, 0, p.stderr)
        # the old session ended, the old password fails, the new one works
        self.assertEqual(self.httpd.post("/v1/admin-panel/logout", headers=bearer(tok)).status, 401)
        self.assertEqual(self.httpd.post("/v1/admin-panel/login", {"username": name, "password": ROOT_PW}).status, 401)
        self.admin_login_cls(name, "New-Root-Pass-99")
        self.assertEqual(pe_admin(self.httpd, "passwd", "nobody", password=ROOT_PW).returncode, 5)
        self.assertTrue(self.events("admin_password_reset"))

    def test_login_shape_and_logout(self):
        r = self.httpd.post("/v1/admin-panel/login", {"username": "root", "password": ROOT_PW})
        self.assertEqual(r.status, 200, r)
        a = r.json["admin"]
        self.assertEqual((a["username"], a["email"], a["is_super_admin"]), ("root", "root@example.com", True))
        self.assertIn("can_create_admins", a["permissions"])
        self.assertNotIn("refresh_token", r.json["session"])
        tok = r.json["session"]["session_token"]
        self.assertEqual(len(tok), 86)
        self.assertEqual(self.httpd.post("/v1/admin-panel/logout", headers=bearer(tok)).status, 200)
        self.assertEqual(self.httpd.post("/v1/admin-panel/logout", headers=bearer(tok)).status, 401)
        # an admin session is not a user session, and cannot be refreshed
        self.assertTrue(self.events("admin_login_successful"))

    def test_admin_lockout(self):
        tok = self.new_admin()
        name = self.httpd.get("/v1/users/profile", headers=bearer(tok))  # not a user: refused
        self.assertIn(name.status, (401, 403))
        uname = self.uniq("lock")
        self.assertEqual(self.httpd.post("/v1/admin-panel/create-admin",
                                         {"username": uname, "name": "Locked", "email": uname + "@example.com",
                                          "password": STAFF_PW}, headers=bearer(self.root)).status, 200)
        for i in range(3):
            r = self.httpd.post("/v1/admin-panel/login", {"username": uname, "password": "Wrong-Pass-%d" % i})
            wrong = self.assertEnvelope(r, 401, "INVALID_CREDENTIALS")
        # locked: the right password gets the answer of a wrong one (docs/security.md)
        j = self.assertEnvelope(self.httpd.post("/v1/admin-panel/login", {"username": uname, "password": STAFF_PW}),
                                401, "INVALID_CREDENTIALS")
        self.assertEqual(j["message"], wrong["message"])
        self.assertEqual(set(j), set(wrong))
        # an unknown username gets the same 401 as a wrong password
        u = self.httpd.post("/v1/admin-panel/login", {"username": "nobody-here", "password": "Wrong-Pass-1"})
        self.assertEnvelope(u, 401, "INVALID_CREDENTIALS")
        # pe-admin passwd lifts the lock
        self.assertEqual(pe_admin(self.httpd, "passwd", uname, password=STAFF_PW + "x").returncode, 0)
        self.admin_login_cls(uname, STAFF_PW + "x")
        self.assertTrue(self.events("admin_locked"))

    def test_support_lockout_after_five(self):
        self.new_staff("new")
        name = self.uniq("stlock")
        self.assertEqual(self.httpd.post("/v1/support/create",
                                         {"username": name, "name": "Help Desk", "email": name + "@example.com",
                                          "password": STAFF_PW}, headers=bearer(self.root)).status, 200)
        for i in range(5):
            self.assertEqual(self.httpd.post("/v1/support/login",
                                             {"username": name, "password": "Wrong-%d-Pass" % i}).status, 401)
        self.assertEnvelope(self.httpd.post("/v1/support/login", {"username": name, "password": STAFF_PW}),
                            401, "INVALID_CREDENTIALS")
        ev = [e for e in self.events("support_login_failed") if '"account_locked"' in e[2]]
        self.assertTrue(ev)

    # -- operators' accounts ended or suspended by other operators ---------------------------
    def admin_account(self, is_super=False):
        """(id, username, session token) of a new administrator."""
        name = self.uniq("adm")
        r = self.httpd.post("/v1/admin-panel/create-admin",
                            {"username": name, "name": "An Admin", "email": name + "@example.com",
                             "password": STAFF_PW, "is_super_admin": is_super}, headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        return r.json["data"]["id"], name, self.admin_login_cls(name, STAFF_PW)

    def staff_account(self, creator=None):
        name = self.uniq("stm")
        r = self.httpd.post("/v1/support/create",
                            {"username": name, "name": "Help Desk", "email": name + "@example.com",
                             "password": STAFF_PW, "staff_level": "advanced"}, headers=bearer(creator or self.root))
        self.assertEqual(r.status, 200, r)
        s = self.httpd.post("/v1/support/login", {"username": name, "password": STAFF_PW})
        self.assertEqual(s.status, 200, s)
        return r.json["data"]["id"], name, s.json["session"]["session_token"]

    def staff_row(self, sid):
        rows = self.sql("SELECT is_active FROM pe_staff WHERE id = '%s'" % sid)
        return int(rows[0][0]) if rows else None

    def works(self, tok, path="/v1/admin-panel/statistics", n=4):
        """The statuses of n requests with tok (with prefork: several children)."""
        return {self.httpd.get(path, headers=bearer(tok)).status for _ in range(n)}

    def test_admin_deactivate_activate_delete(self):
        aid, name, tok = self.admin_account()
        _, _, plain = self.admin_account()
        self.assertEqual(self.works(tok), {200})
        # an administrator who is not a super-administrator: 403 and nothing changed
        for method, path in (("POST", "/v1/admin-panel/admins/%s/deactivate"), ("DELETE", "/v1/admin-panel/admins/%s"),
                             ("POST", "/v1/admin-panel/admins/%s/activate")):
            j = self.assertEnvelope(self.httpd.request(method, path % aid, headers=bearer(plain)), 403, "FORBIDDEN")
            self.assertEqual(j["message"], "Super admin privileges required")
        self.assertEqual(self.staff_row(aid), 1)
        self.assertEqual(self.works(tok), {200})
        # deactivated by a super-administrator: the session is refused at once, and the login
        r = self.httpd.post("/v1/admin-panel/admins/%s/deactivate" % aid, headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"], {"id": aid, "username": name, "is_active": False})
        self.assertEqual(self.works(tok), {401})
        self.assertEnvelope(self.httpd.post("/v1/admin-panel/login", {"username": name, "password": STAFF_PW}),
                            401, "INVALID_CREDENTIALS")
        self.assertEqual(self.staff_row(aid), 0)
        ev = self.events("admin_deactivated")
        self.assertTrue(any(e[1] == "root" and aid in e[2] and name in e[2] for e in ev), ev)
        # reactivated: logs in again; the old session stays ended
        r = self.httpd.post("/v1/admin-panel/admins/%s/activate" % aid, headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json["data"]["is_active"], True)
        self.assertEqual(self.works(tok), {401})
        tok2 = self.admin_login_cls(name, STAFF_PW)
        self.assertEqual(self.works(tok2), {200})
        self.assertTrue(any(aid in e[2] for e in self.events("admin_activated")))
        # deleted: the session ends, the login fails, the name is free again
        r = self.httpd.request("DELETE", "/v1/admin-panel/admins/%s" % aid, headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.works(tok2), {401})
        self.assertEqual(self.staff_row(aid), None)
        self.assertEqual(self.httpd.post("/v1/admin-panel/login", {"username": name, "password": STAFF_PW}).status, 401)
        self.assertTrue(any(e[1] == "root" and aid in e[2] for e in self.events("admin_deleted")))
        self.assertEnvelope(self.httpd.request("DELETE", "/v1/admin-panel/admins/%s" % aid, headers=bearer(self.root)),
                            404, "NOT_FOUND")
        self.assertEqual(self.httpd.post("/v1/admin-panel/create-admin",
                                         {"username": name, "name": "Again", "email": name + "@example.com",
                                          "password": STAFF_PW}, headers=bearer(self.root)).status, 200)
        # a support member's id is not an administrator's
        sid, _, _ = self.staff_account()
        self.assertEnvelope(self.httpd.post("/v1/admin-panel/admins/%s/deactivate" % sid, headers=bearer(self.root)),
                            404, "NOT_FOUND")
        self.assertEqual(self.staff_row(sid), 1)

    def test_support_staff_deactivate_activate_delete(self):
        _, _, admin = self.admin_account()
        sid, name, tok = self.staff_account(creator=admin)
        self.assertEqual(self.works(tok, "/v1/support/profile"), {200})
        # support staff cannot manage support staff
        _, _, other = self.staff_account()
        self.assertEnvelope(self.httpd.post("/v1/admin-panel/support-staff/%s/deactivate" % sid,
                                            headers=bearer(other)), 403, "FORBIDDEN")
        self.assertEqual(self.works(tok, "/v1/support/profile"), {200})
        # any administrator can
        r = self.httpd.post("/v1/admin-panel/support-staff/%s/deactivate" % sid, headers=bearer(admin))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.works(tok, "/v1/support/profile"), {401})
        self.assertEqual(self.httpd.post("/v1/support/login", {"username": name, "password": STAFF_PW}).status, 401)
        self.assertTrue(any(sid in e[2] for e in self.events("support_staff_deactivated")))
        r = self.httpd.post("/v1/admin-panel/support-staff/%s/activate" % sid, headers=bearer(admin))
        self.assertEqual(r.status, 200, r)
        s = self.httpd.post("/v1/support/login", {"username": name, "password": STAFF_PW})
        self.assertEqual(s.status, 200, s)
        tok2 = s.json["session"]["session_token"]
        r = self.httpd.request("DELETE", "/v1/admin-panel/support-staff/%s" % sid, headers=bearer(admin))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.works(tok2, "/v1/support/profile"), {401})
        self.assertEqual(self.staff_row(sid), None)
        self.assertTrue(any(sid in e[2] for e in self.events("support_staff_deleted")))
        self.assertEnvelope(self.httpd.post("/v1/admin-panel/support-staff/%s/activate" % sid, headers=bearer(admin)),
                            404, "NOT_FOUND")

    def test_last_super_admin_guard(self):
        root_id = self.sql("SELECT id FROM pe_staff WHERE kind = 'admin' AND username = 'root'")[0][0]
        # nobody deactivates or deletes their own account
        for method, path in (("POST", "/v1/admin-panel/admins/%s/deactivate"), ("DELETE", "/v1/admin-panel/admins/%s")):
            self.assertEnvelope(self.httpd.request(method, path % root_id, headers=bearer(self.root)),
                                409, "OWN_ACCOUNT")
        others = self.sql("SELECT id, username FROM pe_staff WHERE kind = 'admin' AND is_super = 1 AND is_active = 1")
        s1, n1, t1 = self.admin_account(is_super=True)
        s2, n2, t2 = self.admin_account(is_super=True)
        try:
            # root and any other out of the way: s1 and s2 are the only active super-administrators
            for oid, _ in others:
                self.assertEqual(self.httpd.post("/v1/admin-panel/admins/%s/deactivate" % oid,
                                                 headers=bearer(t1)).status, 200)
            # each deactivates the other at the same moment: one at most goes through, one stays
            with concurrent.futures.ThreadPoolExecutor(2) as ex:
                rs = list(ex.map(lambda a: self.httpd.post("/v1/admin-panel/admins/%s/deactivate" % a[0],
                                                           headers=bearer(a[1])), ((s2, t1), (s1, t2))))
            codes = sorted(r.status for r in rs)
            self.assertIn(codes, ([200, 401], [200, 409], [409, 409]), rs)
            for r in rs:
                if r.status == 409:
                    self.assertEqual(r.json["error_code"], "LAST_SUPER_ADMIN")
            active = [sid for sid in (s1, s2) if self.staff_row(sid) == 1]
            self.assertGreaterEqual(len(active), 1)
            # pe-admin keeps the last one too (exit status 6), and reactivates root
            last = n1 if s1 in active else n2
            if len(active) == 2:
                self.assertEqual(pe_admin(self.httpd, "deactivate", n2).returncode, 0)
                last = n1
            for cmd in ("deactivate", "delete"):
                p = pe_admin(self.httpd, cmd, last)
                self.assertEqual(p.returncode, 6, p.stderr)
                self.assertIn("last active super-administrator", p.stderr)
        finally:
            for _, oname in others:
                self.assertEqual(pe_admin(self.httpd, "activate", oname).returncode, 0)
            type(self).root = self.admin_login_cls("root", ROOT_PW)
        self.assertTrue(any(root_id in e[2] for e in self.events("admin_activated")))
        # with root back, pe-admin deletes the others; an unknown name is 5
        for n in (n1, n2):
            p = pe_admin(self.httpd, "delete", n)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(pe_admin(self.httpd, "delete", n1).returncode, 5)
        self.assertEqual(self.staff_row(s1), None)

    def test_who_creates_whom(self):
        admin = self.new_admin()
        # an admin creates support staff of each level, not administrators
        for level in ("new", "support", "advanced"):
            tok = self.new_staff(level, creator=admin)
            p = self.httpd.get("/v1/support/permissions", headers=bearer(tok))
            self.assertEqual(p.status, 200, p)
            self.assertEqual(p.json["staff_level"], level)
            self.assertIs(p.json["permissions"]["can_view_users"], True)
            self.assertIs(p.json["permissions"]["can_update_users"], level != "new")
            self.assertIs(p.json["permissions"]["can_manage_api_keys"], level == "advanced")
            prof = self.httpd.get("/v1/support/profile", headers=bearer(tok))
            self.assertEqual(prof.json["staff_level"], level)
        j = self.assertEnvelope(self.httpd.post("/v1/admin-panel/create-admin",
                                                {"username": self.uniq("no"), "name": "Nope", "email": "no@example.com",
                                                 "password": STAFF_PW}, headers=bearer(admin)), 403, "FORBIDDEN")
        self.assertEqual(j["message"], "Super admin privileges required")
        # support staff create nobody
        staff = self.new_staff("advanced")
        self.assertEqual(self.httpd.post("/v1/support/create",
                                         {"username": self.uniq("x"), "name": "Nope", "email": "x@example.com",
                                          "password": STAFF_PW}, headers=bearer(staff)).status, 403)
        # duplicates and bad bodies
        r = self.httpd.post("/v1/admin-panel/create-admin", {"username": "root", "name": "Dup", "email": "d@example.com",
                                                             "password": STAFF_PW}, headers=bearer(self.root))
        self.assertEnvelope(r, 409, "USERNAME_EXISTS")
        r = self.httpd.post("/v1/support/create", {"username": self.uniq("w"), "name": "Weak",
                                                   "email": "w@example.com", "password": "short"},
                            headers=bearer(self.root))
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        r = self.httpd.post("/v1/support/create", {"username": self.uniq("w"), "name": "Lvl", "email": "l@example.com",
                                                   "password": STAFF_PW, "staff_level": "boss"},
                            headers=bearer(self.root))
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        created = [d for (_, _, d) in self.events("support_staff_created")]
        self.assertTrue(any('"staff_level":"advanced"' in d for d in created), created)
        self.assertTrue(all(STAFF_PW not in d for d in created))

    # -- the permission matrix --------------------------------------------------------------
    def test_permission_matrix(self):
        principals = {"new": (self.new_staff("new"), "/v1/support"),
                      "support": (self.new_staff("support"), "/v1/support"),
                      "advanced": (self.new_staff("advanced"), "/v1/support"),
                      "admin": (self.new_admin(), "/v1/admin-panel"),
                      "super": (self.root, "/v1/admin-panel")}
        # (body of PUT .../users/{id}, who may) -- SPEC 10.3's field matrix
        writes = [
            ({"name": "Renamed"}, {"advanced", "admin", "super"}),
            ({"email": None}, {"support", "advanced", "admin", "super"}),
            ({"subscription_plan": "pro"}, {"support", "advanced", "admin", "super"}),
            ({"limits": {"conversation_limit": 55, "reset": 40}}, {"support", "advanced", "admin", "super"}),
            ({"credits": {"main": 9, "reset": 9}}, {"support", "advanced", "admin", "super"}),
            ({"level": "high"}, {"advanced", "admin", "super"}),
            ({"access_rtype": ["bpe", "react"]}, {"advanced", "admin", "super"}),
            ({"additional_notes": "vip"}, {"advanced", "admin", "super"}),
            ({"is_verified": True}, {"advanced", "admin", "super"}),
            ({"user_type": "Business"}, {"advanced", "admin", "super"}),
        ]
        for who, (tok, base) in principals.items():
            for body, allowed in writes:
                uid, _, _ = self.new_user()
                if "email" in body:
                    body = {"email": self.uniq("mail") + "@example.com"}
                before = self.user_as_root(uid)
                r = self.httpd.request("PUT", "%s/users/%s" % (base, uid), body, headers=bearer(tok))
                after = self.user_as_root(uid)
                field = next(iter(body))
                if who in allowed:
                    self.assertEqual(r.status, 200, (who, body, r))
                    expect = body[field]
                    self.assertEqual(after[field], expect, (who, field))
                else:
                    self.assertEnvelope(r, 403, "FORBIDDEN")
                    self.assertEqual(after, before, (who, field))
            # reading: every operator reads a user; the fields follow the role
            uid, _, _ = self.new_user()
            g = self.httpd.get("%s/users/%s" % (base, uid), headers=bearer(tok))
            self.assertEqual(g.status, 200, g)
            view = g.json["user"] if base == "/v1/support" else g.json
            self.assertEqual("credits" in view, who != "new", (who, view))
            self.assertEqual("access_rtype" in view, who not in ("new", "support"), (who, view))
            self.assertNotIn("password_hash", view)
            self.assertNotIn("api_key_digest", view)
        # actions of their own routes
        for who, (tok, base) in principals.items():
            uid, key, _ = self.new_user()
            r = self.httpd.post("%s/users/%s/regenerate-api-key" % (base, uid), headers=bearer(tok))
            self.assertEqual(r.status, 200 if who in ("advanced", "admin", "super") else 403, (who, r))
            if base == "/v1/support":
                r = self.httpd.post("%s/users/%s/reset-password" % (base, uid), {"new_password": "Fresh-Pass-123"},
                                    headers=bearer(tok))
                self.assertEqual(r.status, 200 if who != "new" else 403, (who, r))
                r = self.httpd.request("PUT", "%s/users/%s/plan" % (base, uid), {"subscription_plan": "team"},
                                       headers=bearer(tok))
                self.assertEqual(r.status, 200 if who != "new" else 403, (who, r))
            r = self.httpd.request("DELETE", "/v1/admin-panel/users/%s?reason=test" % uid, headers=bearer(tok))
            if who == "super":
                self.assertEqual(r.status, 200, r)
                self.assertEqual(self.httpd.get("/v1/admin-panel/users/" + uid, headers=bearer(self.root)).status, 404)
            else:
                self.assertEqual(r.status, 403, (who, r))
                self.user_as_root(uid)
        # unknown fields are refused, nothing changes
        uid, _, _ = self.new_user()
        before = self.user_as_root(uid)
        r = self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"name": "Ok Name", "password_hash": "x"},
                               headers=bearer(self.root))
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        r = self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"level": "godlike"}, headers=bearer(self.root))
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        r = self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"access_rtype": ["nope"]},
                               headers=bearer(self.root))
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        self.assertEqual(self.user_as_root(uid), before)
        self.assertEnvelope(self.httpd.get("/v1/admin-panel/users/000000000000000000000000", headers=bearer(self.root)),
                            404)

    def test_user_credentials_refused_on_operator_routes(self):
        uid, key, tok = self.new_user()
        routes = [("POST", "/v1/admin-panel/logout"), ("POST", "/v1/admin-panel/create-admin"),
                  ("GET", "/v1/admin-panel/users/" + uid), ("PUT", "/v1/admin-panel/users/" + uid),
                  ("DELETE", "/v1/admin-panel/users/" + uid),
                  ("POST", "/v1/admin-panel/users/%s/regenerate-api-key" % uid),
                  ("POST", "/v1/support/logout"), ("POST", "/v1/support/create"), ("GET", "/v1/support/profile"),
                  ("GET", "/v1/support/permissions"), ("GET", "/v1/support/users/" + uid),
                  ("PUT", "/v1/support/users/" + uid), ("POST", "/v1/support/users/%s/reset-password" % uid),
                  ("PUT", "/v1/support/users/%s/credits" % uid), ("PUT", "/v1/support/users/%s/plan" % uid),
                  ("POST", "/v1/support/users/%s/regenerate-api-key" % uid)]
        staff = self.new_staff("advanced")
        for method, path in routes:
            for cred in (key, tok, None):
                r = self.httpd.request(method, path, {"name": "Hacker"}, headers=bearer(cred) if cred else None)
                self.assertIn(r.status, (401, 403), (method, path, r))
            # an administrator's token is not a support session, and the reverse
            if path.startswith("/v1/support") and path != "/v1/support/create":
                self.assertEqual(self.httpd.request(method, path, {}, headers=bearer(self.root)).status, 403, path)
            if path.startswith("/v1/admin-panel"):
                self.assertEqual(self.httpd.request(method, path, {}, headers=bearer(staff)).status, 403, path)
        self.assertEqual(self.user_as_root(uid)["name"], "A User")

    # -- changes take effect on the user's next request ---------------------------------------
    def test_changes_apply_at_once(self):
        uid, key, tok = self.new_user()
        models = lambda k: self.httpd.get("/v1/models", headers=bearer(k))  # noqa: E731
        low = models(key)
        self.assertEqual(low.status, 200, low)
        r = self.httpd.request("PUT", "/v1/admin-panel/users/" + uid,
                               {"level": "ultra", "access_rtype": ["bpe", "tot", "react"],
                                "limits": {"conversation_limit": 123, "reset": 100}}, headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json["data"]["updated_fields"]), ["access_rtype", "level", "limits"])
        prof = self.httpd.get("/v1/users/profile", headers=bearer(tok)).json
        self.assertEqual((prof["level"], prof["access_rtype"], prof["limits"]["conversation_limit"]),
                         ("ultra", ["bpe", "tot", "react"], 123))
        self.assertGreaterEqual(len(models(key).json["data"]), len(low.json["data"]))
        # a new key: the old one is refused on the next request, the new one works
        r = self.httpd.post("/v1/admin-panel/users/%s/regenerate-api-key" % uid, headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        new_key = r.json["data"]["api_key"]
        self.assertEqual(models(key).status, 401)
        self.assertEqual(models(new_key).status, 200)
        # deactivated: key and session refused at once
        r = self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"is_active": False}, headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(models(new_key).status, 401)
        self.assertEqual(self.httpd.get("/v1/users/profile", headers=bearer(tok)).status, 401)
        self.assertEqual(self.httpd.post("/v1/users/login", {"email": prof["email"], "password": USER_PW}).status, 401)
        r = self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"is_active": True}, headers=bearer(self.root))
        self.assertEqual(models(new_key).status, 200)
        # every change is an event naming the actor, the target and the fields, no secret
        ev = [(pid, name, d) for (pid, name, d) in self.events("user_updated") if uid in d]
        self.assertEqual(len(ev), 3, ev)
        self.assertTrue(all(name == "root" for (_, name, _) in ev))
        self.assertTrue(any('"is_active"' in d for (_, _, d) in ev))
        rk = [d for (_, _, d) in self.events("api_key_regenerated_by_admin") if uid in d]
        self.assertEqual(len(rk), 1)
        self.assertNotIn(new_key, rk[0])

    def test_support_reset_password(self):
        staff = self.new_staff("support")
        uid, key, tok = self.new_user()
        email = self.user_as_root(uid)["email"]
        r = self.httpd.post("/v1/support/users/%s/reset-password" % uid, {"new_password": "weak"}, headers=bearer(staff))
        self.assertEnvelope(r, 422, "VALIDATION_ERROR")
        r = self.httpd.post("/v1/support/users/%s/reset-password" % uid, {"new_password": "Brand-New-Pass-5"},
                            headers=bearer(staff))
        self.assertEqual(r.status, 200, r)
        # the user's sessions ended; the new password works, the old one does not
        self.assertEqual(self.httpd.get("/v1/users/profile", headers=bearer(tok)).status, 401)
        self.assertEqual(self.httpd.post("/v1/users/login", {"email": email, "password": USER_PW}).status, 401)
        self.assertEqual(self.httpd.post("/v1/users/login", {"email": email, "password": "Brand-New-Pass-5"}).status,
                         200)
        ev = [d for (_, _, d) in self.events("user_password_reset_by_support") if uid in d]
        self.assertEqual(len(ev), 1)
        self.assertNotIn("Brand-New-Pass-5", ev[0])
        self.assertIn('"staff_level":"support"', ev[0])
        with open(os.path.join(self.httpd.dir, "logs", "access.log")) as f:
            log = f.read()
        self.assertNotIn("Brand-New-Pass-5", log)

    # -- lists ----------------------------------------------------------------------------------
    def test_users_list_paging_and_filters(self):
        tag = self.uniq("pg")
        n = 1000

        def reg(i):
            name = "%s_%04d" % (tag, i)
            r = self.httpd.post("/v1/users/register", {"username": name, "name": "Paged User",
                                                       "email": name + ("@even.example.com" if i % 2 == 0
                                                                        else "@odd.example.com"),
                                                       "password": USER_PW})
            return r.status, r.json.get("user_id")

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            made = list(ex.map(reg, range(n)))
        self.assertEqual([st for st, _ in made], [201] * n)
        ids = dict((i, uid) for i, (_, uid) in enumerate(made))
        # a few changed by an operator, to filter on
        for i in (3, 5, 7):
            self.assertEqual(self.httpd.request("PUT", "/v1/admin-panel/users/" + ids[i], {"is_active": False},
                                                headers=bearer(self.root)).status, 200)
        for i in (2, 4):
            self.assertEqual(self.httpd.request("PUT", "/v1/admin-panel/users/" + ids[i],
                                                {"subscription_plan": tag, "is_verified": True},
                                                headers=bearer(self.root)).status, 200)
        get = lambda q: self.httpd.get("/v1/admin-panel/users?" + q, headers=bearer(self.root))  # noqa: E731
        r = get("search=%s&page_size=100" % tag)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["total_count"], len(r.json["users"]), r.json["page"], r.json["page_size"]),
                         (n, 100, 1, 100))
        seen = set()
        for page in range(1, 11):
            r = get("search=%s&page_size=100&page=%d&sort=username&order=asc" % (tag.upper(), page))
            names = [u["username"] for u in r.json["users"]]
            self.assertEqual(names, sorted(names))
            seen.update(names)
        self.assertEqual(len(seen), n)
        self.assertEqual(get("search=%s&page=11&page_size=100" % tag).json["users"], [])
        self.assertEqual(get("search=%s&page_size=5&sort=username&order=desc" % tag).json["users"][0]["username"],
                         "%s_%04d" % (tag, n - 1))
        self.assertEqual(get("search=even.example&page_size=1").json["total_count"] >= n // 2, True)
        self.assertEqual(get("search=%s&is_active=false" % tag).json["total_count"], 3)
        self.assertEqual(get("plan=%s" % tag).json["total_count"], 2)
        self.assertEqual(get("plan=%s&is_verified=true" % tag).json["total_count"], 2)
        self.assertEqual(get("username=%s_0042" % tag).json["users"][0]["id"], ids[42])
        self.assertEqual(get("email=%s_0043@odd.example.com" % tag).json["total_count"], 1)
        for bad in ("page=0", "page_size=101", "sort=password_hash", "is_active=maybe", "nonsense=1"):
            self.assertEnvelope(get(bad), 422, "VALIDATION_ERROR")
        # support staff see the list with their level's fields
        s = self.httpd.get("/v1/support/users?search=%s_000&page_size=3" % tag,
                           headers=bearer(self.new_staff("new")))
        self.assertEqual(s.status, 200, s)
        self.assertEqual(s.json["staff_level"], "new")
        self.assertEqual(s.json["total_count"], 10)
        self.assertNotIn("credits", s.json["users"][0])

    def test_statistics_match_counts(self):
        for _ in range(3):
            self.new_user()
        # conversation logs as the log writer stores them: 3 of one user now, 1 of another 10 days
        # ago, 1 of the other 40 days ago
        now = int(time.time() * 1e6)
        day = 86400 * 10**6
        tag = self.uniq("st")
        for k, (who, at, tokens) in enumerate([("a", now, 10), ("a", now, 20), ("a", now, 30),
                                               ("b", now - 10 * day, 5), ("b", now - 40 * day, 7)]):
            self.sql("INSERT INTO pe_message_logs (request_id, user_id, username, tokens_used, created_at) "
                     "VALUES ('%s-%d', '%s-%s', '%s', %d, %d)" % (tag, k, tag, who, who, tokens, at))
        r = self.httpd.get("/v1/admin-panel/statistics", headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        us = r.json["user_statistics"]
        get = lambda q: self.httpd.get("/v1/admin-panel/users?page_size=1&" + q,  # noqa: E731
                                       headers=bearer(self.root)).json["total_count"]
        self.assertEqual(us["total_users"], get(""))
        self.assertEqual(us["active_users"], get("is_active=true"))
        self.assertEqual(us["inactive_users"], get("is_active=false"))
        self.assertEqual(us["verified_users"], get("is_verified=true"))
        self.assertEqual(us["active_users"] + us["inactive_users"], us["total_users"])
        self.assertGreaterEqual(us["total_users"], 3)
        api = r.json["api_statistics"]
        self.assertEqual((api["requests_today"], api["tokens_today"]), (3, 60))
        self.assertEqual((api["requests_7d"], api["tokens_7d"]), (3, 60))
        self.assertEqual((api["requests_30d"], api["tokens_30d"]), (4, 65))
        self.assertEqual(api["total_messages"], 5)
        self.assertEqual([(u["user_id"], u["requests"], u["tokens"]) for u in api["top_users_30d"]],
                         [(tag + "-a", 3, 60), (tag + "-b", 1, 5)])
        self.assertEqual(self.httpd.get("/v1/admin-panel/statistics", headers=bearer(self.new_admin())).status, 200)
        self.assertEqual(self.httpd.get("/v1/admin-panel/statistics",
                                        headers=bearer(self.new_staff("advanced"))).status, 403)

    def test_security_logs_and_message_logs(self):
        uid, _, _ = self.new_user()
        self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"level": "medium"}, headers=bearer(self.root))
        self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"level": "high"}, headers=bearer(self.root))
        r = self.httpd.get("/v1/admin-panel/security-logs?event_type=user_updated&page_size=100",
                           headers=bearer(self.root))
        self.assertEqual(r.status, 200, r)
        mine = [e for e in r.json["logs"] if e["details"].get("target_user_id") == uid]
        self.assertEqual(len(mine), 2)
        self.assertEqual(mine[0]["username"], "root")
        self.assertEqual(mine[0]["principal_kind"], "admin")
        self.assertEqual(mine[0]["details"]["fields_changed"], ["level"])
        self.assertGreaterEqual(mine[0]["timestamp"], mine[1]["timestamp"])
        r = self.httpd.get("/v1/admin-panel/security-logs?user_id=%s&page_size=100" % uid, headers=bearer(self.root))
        self.assertTrue(all(e["user_id"] == uid for e in r.json["logs"]))
        self.assertIn("user_registered", [e["event_type"] for e in r.json["logs"]])
        r = self.httpd.get("/v1/admin-panel/security-logs?severity=warning&page_size=1", headers=bearer(self.root))
        self.assertEqual(r.status, 200)
        self.assertTrue(all(e["severity"] == "warning" for e in r.json["logs"]))
        r = self.httpd.get("/v1/admin-panel/message-logs/" + uid, headers=bearer(self.root))
        self.assertEqual((r.status, r.json["total_count"], r.json["logs"]), (200, 0, []))
        self.assertEqual(self.httpd.get("/v1/admin-panel/security-logs",
                                        headers=bearer(self.new_staff("advanced"))).status, 403)

    def test_ip_lists(self):
        admin = self.new_admin()
        for path, note in (("/v1/admin-panel/ip-blocks", "reason"), ("/v1/admin-panel/ip-whitelist", "description")):
            r = self.httpd.post(path, {"network": "192.0.2.0/24", note: "test range", "expires_in": 3600},
                                headers=bearer(admin))
            self.assertEqual(r.status, 200, r)
            self.assertEnvelope(self.httpd.post(path, {"network": "not-an-ip"}, headers=bearer(admin)), 422)
            lst = self.httpd.get(path, headers=bearer(admin)).json["entries"]
            mine = [e for e in lst if e["network"] == "192.0.2.0/24"]
            self.assertEqual(len(mine), 1)
            self.assertEqual(mine[0][note], "test range")
            self.assertIsNotNone(mine[0]["expires_at"])
            r = self.httpd.request("DELETE", "%s/%d" % (path, mine[0]["id"]), headers=bearer(admin))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.httpd.request("DELETE", "%s/%d" % (path, mine[0]["id"]),
                                                headers=bearer(admin)).status, 404)
            self.assertFalse([e for e in self.httpd.get(path, headers=bearer(admin)).json["entries"]
                              if e["network"] == "192.0.2.0/24"])
            self.assertEqual(self.httpd.get(path, headers=bearer(self.new_staff("advanced"))).status, 403)
        self.assertTrue(self.events("ip_block_added"))
        self.assertTrue(self.events("ip_whitelist_removed"))

    def test_require_pe_role_and_staff_level(self):
        admin, new, adv = self.new_admin(), self.new_staff("new"), self.new_staff("advanced")
        _, key, tok = self.new_user()
        self.assertEqual(self.httpd.get("/super-only/health", headers=bearer(self.root)).status, 200)
        for cred in (admin, new, adv, key, tok):
            self.assertEqual(self.httpd.get("/super-only/health", headers=bearer(cred)).status, 403)
        self.assertEqual(self.httpd.get("/super-only/health").status, 401)
        self.assertEqual(self.httpd.get("/senior-staff/health", headers=bearer(adv)).status, 200)
        for cred in (new, admin, self.root, key):
            self.assertEqual(self.httpd.get("/senior-staff/health", headers=bearer(cred)).status, 403)

    def test_system_prompts(self):
        admin = self.new_admin()
        g = self.httpd.get("/v1/admin/system-prompts", headers=bearer(admin))
        self.assertEqual(g.status, 200, g)
        data = g.json["data"]
        self.assertEqual(data["r_types"], ["bpe", "bcot", "hcot", "react", "tot", "custom"])
        builtin_bpe = data["prompts"]["bpe"]
        self.assertTrue(builtin_bpe)
        r = self.httpd.request("PUT", "/v1/admin/system-prompts", {"r_type": "bpe", "prompt": "Be brief."},
                               headers=bearer(admin))
        self.assertEqual(r.status, 200, r)
        r = self.httpd.request("PUT", "/v1/admin/system-prompts", {"r_type": "custom", "prompt": "Be a poet."},
                               headers=bearer(admin))
        self.assertEqual(r.status, 200, r)
        data = self.httpd.get("/v1/admin/system-prompts", headers=bearer(admin)).json["data"]
        self.assertEqual((data["prompts"]["bpe"], data["prompts"]["custom"]), ("Be brief.", "Be a poet."))
        self.assertEqual(sorted(data["overridden"]), ["bpe", "custom"])
        self.assertEqual(self.httpd.request("DELETE", "/v1/admin/system-prompts/bpe", headers=bearer(admin)).status,
                         200)
        self.assertEqual(self.httpd.request("DELETE", "/v1/admin/system-prompts/bpe", headers=bearer(admin)).status,
                         404)
        self.assertEqual(self.httpd.get("/v1/admin/system-prompts", headers=bearer(admin)).json["data"]["prompts"]["bpe"],
                         builtin_bpe)
        self.assertEnvelope(self.httpd.request("PUT", "/v1/admin/system-prompts", {"r_type": "nope", "prompt": "x"},
                                               headers=bearer(admin)), 422)
        for tok in (self.new_staff("advanced"), self.new_user()[1]):
            self.assertIn(self.httpd.request("PUT", "/v1/admin/system-prompts", {"r_type": "tot", "prompt": "x"},
                                             headers=bearer(tok)).status, (401, 403))
        self.assertTrue(self.events("system_prompt_updated"))
        self.assertTrue(self.events("system_prompt_reset"))


def doc_example(name):
    """The apache block of docs/operators.md that starts with the line '# example: <name>'."""
    with open(os.path.join(TOP, "docs", "operators.md")) as f:
        text = f.read()
    start = text.index("# example: %s\n" % name)
    return text[start:text.index("```", start)]


class MountingLocation(HttpdTestCase):
    """docs/operators.md's <Location> example as written, and the same with only 10.0.0.0/8."""
    EXTRA_CONF = FAST + doc_example("require-ip") + doc_example("require-ip").replace(
        "/ops", "/closed").replace(" 127.0.0.1", "")
    ALLOWED_LOG_IDS = ("AH01630",)  # mod_authz_host's refusal below

    def test_location_example(self):
        h = self.httpd
        self.assertEqual(pe_admin(h, "create-super", "root", "root@example.com", password=ROOT_PW).returncode, 0)
        self.assertEqual(h.get("/ops/health").status, 200)
        r = h.post("/ops/v1/admin-panel/login", {"username": "root", "password": ROOT_PW})
        self.assertEqual(r.status, 200, r)
        tok = r.json["session"]["session_token"]
        self.assertEqual(h.get("/ops/v1/admin-panel/users", headers=bearer(tok)).status, 200)
        self.assertEqual(h.post("/ops/v1/users/register", {}).status, 404)  # not a group served there
        # from an address outside the list: refused before any route runs
        self.assertEqual(h.post("/closed/v1/admin-panel/login", {"username": "root", "password": ROOT_PW}).status, 403)
        self.assertEqual(h.get("/closed/health").status, 403)


class MountingHtaccess(HttpdTestCase):
    """docs/operators.md's .htaccess example as written, in <DocumentRoot>/ops/.htaccess."""
    EXTRA_CONF = FAST
    ALLOWED_LOG_IDS = ("AH01630",)  # mod_authz_host's refusal at the end

    def test_htaccess_example(self):
        h = self.httpd
        d = os.path.join(h.dir, "htdocs", "ops")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, ".htaccess"), "w") as f:
            f.write(doc_example("htaccess"))
        self.assertEqual(pe_admin(h, "create-super", "root", "root@example.com", password=ROOT_PW).returncode, 0)
        r = h.post("/ops/v1/admin-panel/login", {"username": "root", "password": ROOT_PW})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(h.post("/ops/v1/users/register", {}).status, 404)
        with open(os.path.join(d, ".htaccess"), "w") as f:
            f.write(doc_example("htaccess").replace(" 127.0.0.1", ""))
        self.assertEqual(h.post("/ops/v1/admin-panel/login", {"username": "root", "password": ROOT_PW}).status, 403)


class AutoBlocks(HttpdTestCase):
    """Lifting an automatic block (PEAutoBlock) from the admin panel lets the address in at once on
    every child (prefork). The operators' location is outside the access layer (PEAccess Off)
    behind Require ip, so a blocked office can still reach it."""
    MPM = "prefork"
    ENV = {"PE_AUTO_BLOCK": "3 1m 10m"}
    EXTRA_CONF = FAST + """
<Location /ops>
    SetHandler promptenchanter
    PEBaseURI /ops
    PEApi admin-panel
    PEAccess Off
    Require ip 127.0.0.1
</Location>
"""
    ALLOWED_LOG_IDS = ("AH01631",)

    def test_lift(self):
        h = self.httpd
        self.assertEqual(pe_admin(h, "create-super", "root", "root@example.com", password=ROOT_PW).returncode, 0)
        tok = h.post("/ops/v1/admin-panel/login", {"username": "root", "password": ROOT_PW}).json["session"][
            "session_token"]
        self.assertEqual(h.get("/ops/v1/admin-panel/auto-blocks", headers=bearer(tok)).json["blocks"], [])
        for i in range(3):
            self.assertEqual(h.post("/v1/users/login", {"email": "x%d@example.com" % i,
                                                        "password": "Wrong-Pass-1"}).status, 401)
        self.assertEqual([h.get("/v1/users/profile").status for _ in range(8)], [403] * 8)
        blocks = h.get("/ops/v1/admin-panel/auto-blocks", headers=bearer(tok)).json["blocks"]
        self.assertEqual([b["ip_address"] for b in blocks], ["127.0.0.1"])
        r = h.request("DELETE", "/ops/v1/admin-panel/auto-blocks/127.0.0.1", headers=bearer(tok))
        self.assertEqual(r.status, 200, r)
        # at once, whichever child answers
        self.assertEqual([h.get("/v1/users/profile").status for _ in range(16)], [401] * 16)  # lifted: not refused
        self.assertEqual(h.request("DELETE", "/ops/v1/admin-panel/auto-blocks/127.0.0.1", headers=bearer(tok)).status,
                         404)
        self.assertEqual(h.request("DELETE", "/ops/v1/admin-panel/auto-blocks/nonsense", headers=bearer(tok)).status,
                         404)
        self.assertEqual(h.get("/ops/v1/admin-panel/auto-blocks", headers=bearer(tok)).json["blocks"], [])
        ev = h.sqlite("SELECT username, details FROM pe_security_events WHERE event_type = 'ip_block_lifted'")
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0][0], "root")


class OperatorBurstMixin:
    """Count first, then check, for operators as for users: a burst of 29 concurrent wrong
    passwords checks exactly as many as the lock allows (administrators 3, support staff 5: the
    invalid_password events, one per checked password), then the right password is refused
    with the same 401 while the account is locked. The address's automatic block is off so
    only the account counts."""

    EXTRA_CONF = FAST + "PEAutoBlock Off\n"
    ALLOWED_LOG_IDS = ("AH01631",)
    BURST = 29

    def burst(self, path, username, passwords):
        with concurrent.futures.ThreadPoolExecutor(len(passwords)) as ex:
            return list(ex.map(lambda pw: self.httpd.post(path, {"username": username, "password": pw}), passwords))

    def checked(self, event_type, sid):
        rows = self.sql("SELECT details FROM pe_security_events WHERE principal_id = '%s' AND event_type = '%s'"
                        % (sid, event_type))
        return sum(1 for (d,) in rows if "invalid_password" in (d if isinstance(d, str) else json.dumps(d)))

    def one(self, kind, path, create_path, tok, limit):
        name = "burst" + kind
        body = {"username": name, "name": "Burst Test", "email": name + "@example.com", "password": STAFF_PW}
        r = self.httpd.post(create_path, body, headers=bearer(tok))
        self.assertEqual(r.status, 200, r)
        sid = r.json["data"]["id"]
        rs = self.burst(path, name, ["Wrong-Pass-%d" % i for i in range(self.BURST)])
        self.assertEqual([r.status for r in rs], [401] * self.BURST)
        self.assertEqual(self.checked(kind + "_login_failed", sid), limit)
        self.assertEqual(int(self.sql("SELECT failed_logins FROM pe_staff WHERE id = '%s'" % sid)[0][0]), limit)
        self.assertEqual(int(self.sql("SELECT COUNT(*) FROM pe_security_events WHERE principal_id = '%s' AND "
                                      "event_type = '%s_locked'" % (sid, kind))[0][0]), 1)
        # locked: a burst with the right password in it checks nothing and lets nobody in
        pws = ["Wrong-Pass-x%d" % i for i in range(self.BURST)]
        pws[self.BURST // 2] = STAFF_PW
        rs = self.burst(path, name, pws)
        self.assertEqual({r.status for r in rs}, {401})
        self.assertEqual({r.json["message"] for r in rs}, {"Invalid credentials"})
        self.assertEqual(self.checked(kind + "_login_failed", sid), limit)
        self.assertEqual(int(self.sql("SELECT COUNT(*) FROM pe_sessions WHERE principal_id = '%s'" % sid)[0][0]), 0)

    def test_admin_and_support_bursts(self):
        p = pe_admin(self.httpd, "create-super", "root", "root@example.com", password=ROOT_PW)
        self.assertEqual(p.returncode, 0, p.stderr)
        tok = self.httpd.post("/v1/admin-panel/login",
                              {"username": "root", "password": ROOT_PW}).json["session"]["session_token"]
        self.one("admin", "/v1/admin-panel/login", "/v1/admin-panel/create-admin", tok, 3)
        self.one("support", "/v1/support/login", "/v1/support/create", tok, 5)


class AdminSqlite(AdminMixin, HttpdTestCase):
    def sql(self, q):
        return self.httpd.sqlite(q)


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class AdminPostgres(pe_pg.PostgresClass, AdminMixin, HttpdTestCase):
    PG_NAME = "pg-admin"

    def sql(self, q):
        out = self.pg.query(q)
        return [tuple(line.split("|", 2)) for line in out.splitlines()]


class AdminPrefork(AdminSqlite):
    """The same tests with prefork: every request of a test may land on another child process,
    so a change is seen by every child (nothing about principals is cached in a process)."""
    MPM = "prefork"
    test_users_list_paging_and_filters = None  # store-side; once per store is enough


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class AdminTwoNodes(pe_pg.PostgresClass, HttpdTestCase):
    """Two httpds on one PostgreSQL: a change made through one node applies on the other at the
    user's next request (principals are not cached: docs/operators.md)."""
    PG_NAME = "pg-admin2"
    EXTRA_CONF = FAST
    ALLOWED_LOG_IDS = ("AH01631",)

    def test_change_on_one_node_applies_on_the_other(self):
        # a cluster shares its keys (PESecretKeyFile, PEEncryptionKeyFile): node 2 gets node 1's
        other = Httpd("admin-node2", extra_conf=FAST, env=self.ENV).start_node_of(self.httpd)
        try:
            self.assertEqual(pe_admin(self.httpd, "create-super", "root", "root@example.com",
                                      password=ROOT_PW).returncode, 0)
            tok = self.httpd.post("/v1/admin-panel/login",
                                  {"username": "root", "password": ROOT_PW}).json["session"]["session_token"]
            r = other.post("/v1/users/register", {"username": "twonode", "name": "Two Nodes",
                                                  "email": "two@example.com", "password": USER_PW})
            self.assertEqual(r.status, 201, r)
            uid, key = r.json["user_id"], r.json["api_key"]
            # the admin session made on node 1 works on node 2
            self.assertEqual(other.get("/v1/admin-panel/users/" + uid, headers=bearer(tok)).status, 200)
            self.assertEqual(other.get("/v1/models", headers=bearer(key)).status, 200)
            self.assertEqual(self.httpd.request("PUT", "/v1/admin-panel/users/" + uid, {"is_active": False},
                                                headers=bearer(tok)).status, 200)
            self.assertEqual(other.get("/v1/models", headers=bearer(key)).status, 401)
            self.assertEqual(self.httpd.request("PUT", "/v1/admin-panel/users/" + uid,
                                                {"is_active": True, "level": "high"}, headers=bearer(tok)).status, 200)
            s = other.post("/v1/users/login", {"email": "two@example.com", "password": USER_PW})
            self.assertEqual(s.status, 200, s)
            prof = other.get("/v1/users/profile", headers=bearer(s.json["session"]["session_token"])).json
            self.assertEqual(prof["level"], "high")
            r = self.httpd.post("/v1/admin-panel/users/%s/regenerate-api-key" % uid, headers=bearer(tok))
            self.assertEqual(other.get("/v1/models", headers=bearer(key)).status, 401)
            self.assertEqual(other.get("/v1/models", headers=bearer(r.json["data"]["api_key"])).status, 200)
        finally:
            other.stop()
        problems = other.log_problems(self.ALLOWED_LOG_IDS)
        self.assertEqual(problems, [])


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class AdminMongo(pe_mongo.MongoClass, AdminSqlite):
    """The SQLite class's tests on MongoDB (its SQL runs on the collections: pe_mongo.SqlOnMongo)."""
    MONGO_NAME = "mongo-admin"


class OperatorBurstSqlite(OperatorBurstMixin, HttpdTestCase):
    sql = AdminSqlite.sql


@unittest.skipUnless(pe_pg.available(), "PostgreSQL is not installed")
class OperatorBurstPostgres(pe_pg.PostgresClass, OperatorBurstMixin, HttpdTestCase):
    PG_NAME = "pg-opburst"
    sql = AdminPostgres.sql


@unittest.skipUnless(pe_mongo.available(), "no MongoDB server (node and the stand-in, or PE_TEST_MONGODB_URI)")
class OperatorBurstMongo(pe_mongo.MongoClass, OperatorBurstSqlite):
    MONGO_NAME = "mongo-opburst"


if __name__ == "__main__":
    unittest.main()
