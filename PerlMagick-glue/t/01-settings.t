# configure and settings: the image registry, read back through the XS;
# what configure refuses; library().
use strict;
use warnings;
use lib 't/lib';
use DPCTest;
use Test::More;
use Image::Magick;
use Image::Magick::DPC qw(:all);

configure(hosts => ['127.0.0.1:6668', '127.0.0.1:6669'], tiers => 'shm,memory',
    tile_cache => '8MiB', socket => work_dir() . '/x.sock', replicas => 2);
my $now = settings();
is($now->{hosts}, '127.0.0.1:6668,127.0.0.1:6669', 'hosts: a list joined');
is($now->{tiers}, 'shm,memory', 'tiers');
is($now->{tile_cache}, '8MiB', 'tile cache');
is($now->{replicas}, 2, 'replicas');
is(Image::Magick::DPC::_registry_get('cache:dpc-socket'),
    work_dir() . '/x.sock', 'socket is the registry entry cache:dpc-socket');

configure(hosts => undef, tiers => undef, tile_cache => undef,
    socket => undef, replicas => undef);
is_deeply([grep { exists settings()->{$_} } qw(hosts tiers tile_cache socket
    replicas)], [], 'undef removes each setting');

eval { configure(hostz => 'x') };
like($@, qr/^Image::Magick::DPC::configure: unknown setting 'hostz' \(known: .*hosts/,
    'an unknown setting croaks, listing the known ones');
eval { configure(hosts => {}) };
like($@, qr/cache:hosts: a string or a list, not HASH/, 'a hash is refused');

eval { attach('../etc/passwd') };
like($@, qr/^Image::Magick::DPC::attach: bad name '\.\.\/etc\/passwd'/,
    'a name with a path croaks before the coder runs');

configure(program => work_dir() . '/no-such-magick-dpc');
eval { names() };
like($@, qr/^Image::Magick::DPC::names: .*no-such-magick-dpc/,
    'a missing magick-dpc program is named');
configure(program => undef);

like(library(), qr{/libMagickCore-6\.Q16\.so}, 'library(): the loaded libMagickCore');
done_testing();
