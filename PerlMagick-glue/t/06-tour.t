# examples/tour.pl runs against a real server and reports what it should.
use strict;
use warnings;
use lib 't/lib';
use DPCTest;
use Test::More;
use Cwd qw(realpath);
use Image::Magick::DPC qw(library);

my $server = start_server('tour');
my $host = "127.0.0.1:$server->{port}";
my $out = `timeout 120 $^X -Mblib examples/tour.pl --host $host --socket $server->{socket} 2>&1`;
is($?, 0, 'tour.pl exits 0') or diag($out);
like($out, qr/^library: \S*libMagickCore/m, 'library');
like($out, qr/^settings: .*hosts=\Q$host\E.*tiers=shm,distributed,memory/m, 'settings');
like($out, qr/^published: tour \(uid $<\) \d+ bytes, 3\d\d s to live$/m, 'publish, names');
like($out, qr/^attached: 320x240, same pixels: yes$/m, 'attach');
like($out, qr/^after remove: 0 names$/m, 'remove');
like($out, qr/^server \Q$host\E: \d+ caches open, [1-9]\d* requests served/m, 'status over TCP');
my $dropin = $ENV{DROPIN_LIB} && realpath($ENV{DROPIN_LIB});
SKIP: {
    skip 'the tiers need the drop-in libMagickCore', 2
        unless $dropin && index(realpath(library()), "$dropin/") == 0;
    like($out, qr/^shm tier: [1-9]\d* bytes in use, [1-9]\d* segments, held by pids \d+/m,
        'the shm tier took the image');
    like($out, qr/^server \Q$host\E: [1-9]\d* caches open/m,
        'the distributed tier took the rotated one');
}
like($out, qr/^attach after remove: Image::Magick::DPC::attach: no image named 'tour'/m,
    'the croak for a removed name');
note($out);
is(stop_server($server), 0, 'server stops cleanly');
done_testing();
