# status over TCP with the secret and over the socket; the croaks when
# there is no server, when the secret is wrong or missing.
use strict;
use warnings;
use lib 't/lib';
use DPCTest;
use Test::More;
use Image::Magick::DPC qw(:all);

my $server = start_server('status');
my $host = "127.0.0.1:$server->{port}";

my $tcp = status(host => $host);
is(ref $tcp, 'HASH', 'status over TCP is a hash');
ok($tcp->{requests_served} >= 1, 'requests_served counts ours');
ok(exists $tcp->{caches_open} && exists $tcp->{shm}{budget},
    'with the caches and the shm tier');
my $again = status(host => $host, timeout => '5s');
ok($again->{requests_served} > $tcp->{requests_served}, 'a second one counts');

my $local = status(socket => $server->{socket});
ok($local->{budget} > 0 && exists $local->{holders}, 'status over the socket');
configure(socket => $server->{socket});
is(status()->{budget}, $local->{budget}, 'status() takes the configured socket');
configure(socket => undef);

my $none = work_dir() . '/none.sock';
eval { status(socket => $none) };
like($@, qr/^Image::Magick::DPC::status: no magick-dpc server at socket \Q$none\E .*magick-dpc serve --socket/,
    'no server at the socket: named, with the fix');
configure(socket => $none);
eval { names() };
like($@, qr/^Image::Magick::DPC::names: no magick-dpc server at socket \Q$none\E/,
    'names: the configured socket named');
eval { publish(test_image(), 'x') };
like($@, qr/^Image::Magick::DPC::publish: no magick-dpc server at socket \Q$none\E/,
    'publish: the configured socket named');
configure(socket => undef);

my $closed = '127.0.0.1:' . free_port();
eval { status(host => $closed) };
like($@, qr/^Image::Magick::DPC::status: no magick-dpc server at \Q$closed\E \(Connection refused\)/,
    'no server at the host: named');

{
    local $ENV{MAGICK_CONFIGURE_PATH} = write_policy(work_dir() . '/wrong',
        'another-secret-' . time() . '-xyzzy');
    eval { status(host => $host) };
    like($@, qr/^Image::Magick::DPC::status: wrong secret: \Q$host\E refused our proof/,
        'a wrong secret: says so');
    my $secret = secret();
    unlike($@, qr/\Q$secret\E|xyzzy/, 'neither secret in the message');
}
{
    local $ENV{MAGICK_CONFIGURE_PATH} = work_dir() . '/nothing-here';
    eval { status(host => $host) };
    like($@, qr/^Image::Magick::DPC::status: no shared secret is configured: set cache:shared-secret/,
        'no secret: says where to set it');
}
ok(kill(0, $server->{pid}), 'the server lives on');
is(stop_server($server), 0, 'server stops cleanly');
done_testing();
