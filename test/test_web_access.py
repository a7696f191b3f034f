"""Who the web view serves (webapp.Access, pure): the Host check that stops DNS rebinding
and the token needed beyond the loopback."""
import socket

import pytest

from edge_classifier.webapp import Access, is_loopback

HOSTNAME = socket.gethostname().lower()


@pytest.mark.parametrize('header, name', [
    ('127.0.0.1:8080', '127.0.0.1'), ('localhost', 'localhost'), ('[::1]:8080', '::1'),
    ('[fe80::1]', 'fe80::1'), ('Robot.LAN:80', 'robot.lan'), ('::1', '::1'), ('', '')])
def test_the_host_header_is_read_without_its_port(header, name):
    assert Access.host_name(header) == name


def test_on_the_loopback_only_loopback_names_and_addresses_are_served_without_a_token():
    access = Access('127.0.0.1')
    assert access.token is None
    for host in ('127.0.0.1:8080', 'localhost:8080', '[::1]:8080', '127.0.0.2', 'LOCALHOST',
                 'app.localhost:8080', 'localhost.:8080'):
        assert access.refusal(host, None) is None, host
    for host in ('attacker.example:8080', 'attacker.example', '127.0.0.1.nip.io:8080',
                 '192.168.1.5:8080', '', 'localhost.attacker.example'):
        refusal = access.refusal(host, None)
        assert refusal.startswith('403: Host') and 'allowed_hosts' in refusal, host


def test_a_rebinding_name_is_refused_even_with_the_token():
    access = Access('0.0.0.0', token='s3cret')
    assert access.refusal('attacker.example:8080', 's3cret').startswith('403: Host')


def test_bound_to_all_addresses_any_address_and_this_machines_name_pass_the_host_check():
    access = Access('0.0.0.0')
    assert access.token and len(access.token) >= 20           # a random token, needed
    token = access.token
    for host in ('192.168.1.5:8080', '10.0.0.1', '[fe80::1]:8080', '127.0.0.1',
                 f'{HOSTNAME}:8080', f'{HOSTNAME}.local:8080'):
        assert access.refusal(host, token) is None, host
        assert 'token' in access.refusal(host, None), host
    assert access.refusal('robot.example.com', token).startswith('403: Host')
    assert Access('0.0.0.0').token != token                    # never the same twice


def test_bound_to_one_address_other_addresses_are_refused():
    access = Access('10.0.0.2', token='t')
    assert access.refusal('10.0.0.2:8080', 't') is None
    assert access.refusal('10.0.0.3:8080', 't').startswith('403: Host')


def test_allowed_hosts_adds_names_and_star_allows_any():
    access = Access('10.0.0.2', allowed_hosts=['Robot.lan.', ' proxy.example '], token='t')
    assert access.refusal('robot.lan:8080', 't') is None
    assert access.refusal('PROXY.example', 't') is None
    assert access.refusal('other.lan', 't').startswith('403: Host')
    assert Access('10.0.0.2', allowed_hosts=['*'], token='t').refusal('any.name', 't') is None


def test_the_token_must_match_exactly():
    access = Access('10.0.0.2', token='abc123')
    assert access.refusal('10.0.0.2', 'abc123') is None
    for wrong in (None, '', 'abc12', 'abc1234', 'ABC123', 'abc123 '):
        refusal = access.refusal('10.0.0.2', wrong)
        assert refusal.startswith('403: this web view needs its token'), wrong
        assert 'token:=' in refusal


def test_a_token_set_on_the_loopback_is_needed_there_too():
    access = Access('127.0.0.1', token='abc')
    assert 'token' in access.refusal('127.0.0.1', None)
    assert access.refusal('127.0.0.1', 'abc') is None


@pytest.mark.parametrize('host, loopback', [
    ('127.0.0.1', True), ('::1', True), ('[::1]', True), ('localhost', True),
    ('0.0.0.0', False), ('10.0.0.2', False), ('robot.lan', False), ('::', False)])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback
