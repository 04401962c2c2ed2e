# Tiers chosen from Perl: a blur on the distributed tier and on the shm
# tier, set only through configure (policy.xml holds nothing but the
# secret), identical to the memory tier's, with the pixels on the server.
# Needs perl started on the drop-in libMagickCore (LD_LIBRARY_PATH=DROPIN_LIB).
use strict;
use warnings;
use lib 't/lib';
use DPCTest;
use Test::More;
use Cwd qw(realpath);
use Image::Magick;
use Image::Magick::DPC qw(:all);

my $dropin = $ENV{DROPIN_LIB} && realpath($ENV{DROPIN_LIB});
plan skip_all => 'perl did not load the drop-in libMagickCore '
    . '(run with DROPIN_LIB and LD_LIBRARY_PATH naming it)'
    unless $dropin && index(realpath(library()), "$dropin/") == 0;

my $server = start_server('tiers');
my $host = "127.0.0.1:$server->{port}";

sub blurred {
    my $image = test_image();
    my $err = $image->Blur(geometry => '0x2');
    die "blur: $err\n" if $err;
    return $image;
}

configure(tiers => 'memory');
my $reference = blurred();

configure(hosts => $host, tiers => 'distributed', tile_cache => '1MiB');
my $before = status(host => $host);
my $dist = blurred();
my $during = status(host => $host);
ok(same_pixels($reference, $dist), 'distributed tier: the same pixels');
ok($during->{requests_served} > $before->{requests_served} + 1,
    'the server served the pixels');
ok($during->{caches_open} >= 1, 'the blurred image lives on the server');
undef $dist;
configure(hosts => undef);

configure(tiers => 'shm', socket => $server->{socket});
my $shm = blurred();
my $held = status();
ok(same_pixels($reference, $shm), 'shm tier: the same pixels');
ok($held->{used} > 0, 'its cache is a segment of the server');
ok(grep({ $_->{pid} == $$ } @{ $held->{holders} }), 'held by this process');
undef $shm;
is(status()->{used}, 0, 'freed with the image');
configure(tiers => undef, socket => undef, tile_cache => undef);
is(stop_server($server), 0, 'server stops cleanly');
done_testing();
